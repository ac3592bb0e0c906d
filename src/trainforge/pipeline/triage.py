"""Triage hints for known failures: what a person should try first, from the error name and cause."""

from __future__ import annotations

import re

from trainforge import errors

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r"out of memory|OutOfMemory|CUDA error: out of memory|Cannot allocate memory", re.I),
        errors.OutOfMemory.hint,
    ),
    (re.compile(r"NonFiniteLoss|loss became nan|loss became inf", re.I), errors.NonFiniteLoss.hint),
    (re.compile(r"ResourceLimitExceeded|quota", re.I), errors.QuotaExceeded.hint),
    (re.compile(r"BaseModelNotFound|config\.json missing|no base model", re.I), errors.BaseModelNotFound.hint),
    (re.compile(r"DatasetRejected", re.I), errors.DatasetRejected.hint),
    (re.compile(r"SpecInvalid", re.I), errors.SpecInvalid.hint),
    (re.compile(r"GateFailed", re.I), errors.GateFailed.hint),
    (
        re.compile(r"CapacityError|InsufficientCapacity|spot", re.I),
        "No capacity for the instance type right now: retry later, set compute.spot: false, or pick another type.",
    ),
]


def hint_for(error: str, cause: str) -> str:
    text = f"{error} {cause}"
    for pattern, hint in _PATTERNS:
        if pattern.search(text):
            return hint
    return "Read the logs listed here; the cause above is the job's own last words."
