"""Host memory that goes back to the system when a tensor is freed.

torch's CPU tensors come from the C library's ``malloc``. glibc serves a request of 128 KiB or more with
its own ``mmap``, returned to the system on ``free``, but each such ``free`` raises that threshold to the
block's size (up to 32 MiB), so from then on blocks of that size come from the heap, where a freed block
stays resident until a neighbour frees too. A training step frees and reallocates tensors of many sizes
every layer, and the heap only grows: SmolLM2-135M with LoRA at 2,048 tokens a step peaked at 4.5 GB RSS
in its first step, 5.9 GB by its fourth, where the tensors alive at once never exceed 3.7 GB.
Fixing the threshold (``mallopt(M_MMAP_THRESHOLD)``, which also turns its adjustment off) keeps every
large tensor in its own mapping: the same run peaked at 3.7-3.8 GB in every step. The cost is a page fault
per 4 KiB touched in a new block, about 10% more CPU time a step on a 2-core host (docs/benchmarks.md).
"""

from __future__ import annotations

import ctypes
import platform

#: mallopt's parameter number for the mmap threshold (glibc's malloc.h)
M_MMAP_THRESHOLD = -3
#: glibc's own default threshold, held fixed
MMAP_THRESHOLD_BYTES = 128 * 1024


def return_freed_memory() -> bool:
    """Fix glibc's mmap threshold for this process; says whether it could (False on other C libraries,
    where nothing changes). Call it before the model is loaded: blocks already on the heap stay there."""
    if platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(None)  # the C library this process runs on
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
