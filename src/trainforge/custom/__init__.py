"""Your own training code inside the pipeline: a script on SageMaker's script-mode contract in AWS's
framework containers (PyTorch, JAX, TensorFlow), or a container of your own (docs/training.md, Your own
code). Validation, plan, evaluation, gate, registry and deploy stay the pipeline's own."""

from trainforge.custom.frameworks import FRAMEWORKS, framework_placement
from trainforge.custom.model_format import require_hf_folder
from trainforge.custom.request import CustomParts, custom_parts

__all__ = ("FRAMEWORKS", "CustomParts", "custom_parts", "framework_placement", "require_hf_folder")
