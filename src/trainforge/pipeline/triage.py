"""Triage hints for known failures: what a person should try first, from the error name and cause.

A process the kernel kills for memory leaves no reason of its own: it ends by SIGKILL (a negative return
code locally, exit code 137 in a container), and SageMaker reports it in the training job's
``FailureReason`` in its own words. Such a failure's hint says so, repeats the memory facts the cause
carries (:func:`trainforge.planning.memory_facts`: the estimate the run trained under, the peaks it
reported), and names the levers.
"""

from __future__ import annotations

import re

from trainforge import errors
from trainforge.custom.model_format import NOT_HF
from trainforge.custom.script_mode import NO_METRICS, NO_MODEL
from trainforge.planning.memory import FACTS_PREFIX

# How a death by the kernel's out-of-memory killer reads: the local launcher's cause ("killed by SIGKILL"),
# torchrun's summary of a killed worker ("Signal 9 (SIGKILL) received by PID", "exitcode  : -9"), a container's
# exit code 137 (128 + SIGKILL's 9), and SageMaker's FailureReason texts for a job out of memory, as consumers of
# its API match them (https://github.com/comic/grand-challenge.org/blob/main/app/grandchallenge/components/
# backends/amazon_sagemaker_base.py: "ClientError: Please use an instance type with more memory, or reduce the
# size of job data processed on an instance." and "ClientError: Artifact upload failed:ClientError: Out of
# Memory. Please use a larger instance").
KILLED_FOR_MEMORY = re.compile(
    r"killed by SIGKILL|Signal 9 \(SIGKILL\)|exitcode\s*:\s*-9\b|exit ?code:?\s*137\b|ExitCode\s*137\b"
    r"|instance type with more memory|Out of Memory\. Please use a larger instance",
    re.I,
)
#: the sentence :func:`trainforge.planning.memory_facts` writes into a cause, as the hint finds it again
_FACTS = re.compile(re.escape(FACTS_PREFIX) + r"[^\n]*")

TRAINING_LEVERS = (
    "lower hyperparameters.batch_size (raise grad_accum to keep the effective batch) or max_seq_len, set "
    "gradient_checkpointing: true, train a LoRA adapter (method: lora) instead of every weight, or use an "
    "instance type with more memory"
)
EVALUATION_LEVERS = (
    "lower evaluation.max_examples, max_new_tokens or generation_samples, or evaluate on an instance type with "
    "more memory"
)

#: a custom job's own failures (trainforge.custom): what the script must do that it did not
_CUSTOM_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(re.escape(NO_MODEL)),
        "Your script must save the model under SM_MODEL_DIR (/opt/ml/model in SageMaker): "
        "model.save_pretrained(os.environ['SM_MODEL_DIR']) and the tokenizer beside it for a language model, "
        "or your framework's own format with custom.evaluation_entry_point.",
    ),
    (
        re.compile(re.escape(NO_METRICS)),
        'Your script must print its metrics as JSON lines on stdout, e.g. print(json.dumps({"step": step, '
        '"loss": loss}), flush=True) and {"eval_loss": ...}: the local run reads them and SageMaker\'s '
        "MetricDefinitions match them.",
    ),
    (
        re.compile(re.escape(NOT_HF)),
        "Save an HF folder (save_pretrained: config.json, *.safetensors, the tokenizer) into SM_MODEL_DIR, or name "
        "custom.evaluation_entry_point to score the model with your own code.",
    ),
    (
        re.compile(r"^the custom (evaluation )?script .* (exited with code|was killed by)", re.M),
        "Your script failed: its traceback is in the last log lines above (the full log is listed). It runs as "
        "`python ENTRY_POINT --name value ...` in /opt/ml/code (locally the run's train/code/) with the SM_* "
        "variables; `trainforge run` reproduces the job on this machine.",
    ),
]

_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # first: the plan's own reasons name instance types, quotas and memory, which the patterns below match
    (re.compile(r"^PlanRefused\b"), errors.PlanRefused.hint),
    (re.compile(r"^CanaryRolledBack\b"), errors.CanaryRolledBack.hint),
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
    if KILLED_FOR_MEMORY.search(cause):
        return killed_hint(error, cause)
    text = f"{error} {cause}"
    for pattern, hint in _CUSTOM_PATTERNS:
        if pattern.search(cause):
            return hint
    for pattern, hint in _PATTERNS:
        if pattern.search(text):
            return hint
    return "Read the logs listed here; the cause above is the job's own last words."


def killed_hint(error: str, cause: str) -> str:
    """Out of memory, most likely: the facts the cause carries, and the levers for the job that died."""
    facts = _FACTS.search(cause)
    levers = EVALUATION_LEVERS if error == errors.EvaluationFailed.__name__ else TRAINING_LEVERS
    return (
        "Out of memory, most likely: the kernel's out-of-memory killer ends a process with SIGKILL (exit code "
        f"137), which leaves no reason of its own. {facts.group(0) + ' ' if facts else ''}To fit: {levers}."
    )
