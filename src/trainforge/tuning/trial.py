"""A tuning trial inside the training container: the text probes measured before the first step and after
the last, and the objective line the tuner reads (``tuning.objective``). A plain run
(``max_forgetting`` unset) measures nothing."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trainforge.training.config import TrainConfig

Emit = Callable[[dict[str, Any]], None]

PROBES_BEFORE_FILE = "probes_before.json"


def trial_probes_before(model: Any, tokenizer: Any, config: TrainConfig, checkpoints: Path, main: bool) -> Any:
    """A tuning trial's text probes on the model before its first step (a LoRA adapter starts as the identity,
    so this is the base model), kept beside the checkpoints so a resumed trial compares with the same start;
    None for a plain run."""
    if config.max_forgetting is None or not main:
        return None
    import numpy as np

    from trainforge.evaluation.probes import text_nll

    saved = checkpoints / PROBES_BEFORE_FILE
    if saved.is_file():
        return {name: tuple(map(np.asarray, pair)) for name, pair in json.loads(saved.read_text()).items()}
    before = text_nll(model, tokenizer)
    saved.write_text(json.dumps({name: [a.tolist() for a in pair] for name, pair in before.items()}))
    model.train()
    return before


def objective_progress(emit: Emit, config: TrainConfig) -> Callable[[int, float], None] | None:
    """In a tuning trial, what the loop calls after each periodic validation with the objective of its best
    validation so far: a line (``tuning.objective.progress_record``) so that AMT's early stopping has a value
    per evaluation. None for a plain run."""
    if config.max_forgetting is None:
        return None
    from trainforge.tuning.objective import progress_record

    return lambda step, best: emit(progress_record(step, best))


def trial_objective(model: Any, tokenizer: Any, config: TrainConfig, outcome: Any, before: Any) -> dict[str, Any]:
    """The trial's figures for the tuner: its best validation's loss (and exact match, where it selects by it),
    forgetting (the worst text probe's relative perplexity increase since the start), the objective and its
    constrained form (``tuning.objective``) and the step whose weights the trial ended with (its best
    validation's, restored, or its last)."""
    from trainforge.evaluation.probes import relative_increase, text_nll
    from trainforge.tuning.objective import objective_record

    after = text_nll(model, tokenizer)
    forgetting = max(relative_increase(before[name], after[name]) for name in before)
    loss = outcome.best_eval_loss if outcome.best_eval_loss is not None else outcome.final_loss
    assert config.max_forgetting is not None
    model_step = outcome.restored_step if outcome.restored_step is not None else outcome.steps
    exact = outcome.best_exact_match
    if config.selection_metric == "exact_match" and exact is None:
        exact = 0.0  # no validation measured one: the worst score, as eval_loss falls back to the last loss
    return objective_record(
        config.selection_metric,
        float(loss),
        exact,
        forgetting,
        config.max_forgetting,
        model_step,
    )
