"""Optional lm-eval-harness tasks (``evaluation.tasks`` in the spec), run offline on the model folders.

lm-eval is not a dependency: when the spec names tasks and it is not installed, the evaluation says so
and continues. Tasks must be available offline (built-in tasks whose data is cached, or custom task YAML
over local JSONL) because evaluation containers run with network isolation.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path


def run_tasks(model_dir: Path, tasks: list[str], prefix: str) -> dict[str, float]:
    if not tasks:
        return {}
    if importlib.util.find_spec("lm_eval") is None:
        print(f"lm-eval is not installed: skipped tasks {', '.join(tasks)} (pip install lm-eval)", flush=True)
        return {}
    import lm_eval

    results = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={model_dir}", tasks=tasks, batch_size=8)
    scores: dict[str, float] = {}
    for task, values in (results or {}).get("results", {}).items():
        for metric, value in values.items():
            if isinstance(value, (int, float)) and "stderr" not in metric:
                scores[f"{prefix}/{task}/{metric}"] = float(value)
    return scores
