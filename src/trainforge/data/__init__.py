"""Dataset validation: streaming, constant-memory checks of every format TrainForge trains on.

No torch here: this package runs inside the validate_upload Lambda.
"""

from trainforge.data.validation import ValidationOptions, validate_dataset

__all__ = ("ValidationOptions", "validate_dataset")
