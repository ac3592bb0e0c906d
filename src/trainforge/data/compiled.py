"""The optional compiled inner loops of validation (``_scan.c``), or None where they were not built.

``setup.py`` builds them wherever a C compiler is present; the Lambda layer and any machine without one run
the pure-Python twins in ``dedup.py`` and ``pii.py``, which give the same results (a test holds them
equal), only slower. ``TRAINFORGE_PURE_PYTHON=1`` picks the twins here too, to measure what the Lambda runs.
"""

from __future__ import annotations

import os
from types import ModuleType

scan: ModuleType | None = None
if os.environ.get("TRAINFORGE_PURE_PYTHON") != "1":
    try:
        from trainforge.data import _scan as scan
    except ImportError:  # pragma: no cover - covered by the twins' equality test
        scan = None
