"""``trainforge-evaluate``: the SageMaker processing-job contract.

    /opt/ml/processing/input/config/evaluation.json   run id, base model id, data format, EvaluationSpec
    /opt/ml/processing/input/model/                   the tuned HF folder
    /opt/ml/processing/input/base_model/              the base HF folder
    /opt/ml/processing/input/data/                    held-out examples (JSONL)
    /opt/ml/processing/input/metrics/                 optional: training metrics.jsonl, for the loss chart
    /opt/ml/processing/output/report.json, report.html, parity.json (the reference the endpoint must match)

The root is ``--processing-root`` or ``$TRAINFORGE_PROCESSING_ROOT`` (default /opt/ml/processing).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from trainforge.errors import EvaluationFailed


def evaluate_from_contract(root: Path) -> dict[str, Any]:
    from transformers.utils import logging as hf_logging

    from trainforge.contracts import PlannedActual, TrialSummary
    from trainforge.data.records import load_records
    from trainforge.data.split import split_records
    from trainforge.evaluation.gate import decide
    from trainforge.evaluation.html_report import render
    from trainforge.evaluation.lm_eval_tasks import run_tasks
    from trainforge.evaluation.media_scoring import score_media
    from trainforge.evaluation.parity import parity_reference
    from trainforge.evaluation.scoring import load_pair, score
    from trainforge.media.models import media_modality
    from trainforge.spec import EvaluationSpec

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    config = json.loads((root / "input/config/evaluation.json").read_text())
    thresholds = EvaluationSpec.model_validate(config.get("evaluation", {}))
    inputs = root / "input"
    for channel in ("model", "base_model", "data"):
        if not (inputs / channel).exists():
            raise EvaluationFailed(f"missing input {inputs / channel}")
    fmt, records = load_records(inputs / "data", config.get("data_format") or "auto")
    if config.get("split"):  # no validation file: evaluate on exactly the examples training held out
        records = split_records(records, fmt, int(config["split"]["seed"]), float(config["split"]["fraction"]))[1]
    if not records:
        raise EvaluationFailed(
            "no held-out examples to evaluate on: raise data.validation_fraction or add data.validation"
        )
    identity: dict[str, Any] = {
        "run_id": config["run_id"],
        "base_model": config["base_model"],
        "tuned_uri": config.get("tuned_model_uri", str(inputs / "model")),
        "seed": int(config.get("seed", 0)),
    }
    tuned = tokenizer = None  # a speech or image+text model has no chat prompts for the parity reference
    if media_modality(inputs / "base_model") is not None:
        report = score_media(
            inputs / "base_model", inputs / "model", inputs / "data", records, fmt, thresholds, **identity
        )
    else:
        base, tuned, tokenizer = load_pair(inputs / "base_model", inputs / "model", str(config.get("device", "auto")))
        report = score(
            base, tuned, tokenizer, records, fmt, thresholds, **identity, dpo_beta=float(config.get("dpo_beta", 0.1))
        )
    lm_scores = {
        **run_tasks(inputs / "base_model", thresholds.tasks, "base"),
        **run_tasks(inputs / "model", thresholds.tasks, "tuned"),
    }
    trials = [TrialSummary.model_validate(row) for row in config.get("trials", [])]
    report = report.model_copy(update={"lm_eval": lm_scores, "trials": trials})
    report = report.model_copy(update={"verdict": decide(report, thresholds)})
    history_file = inputs / "metrics" / "metrics.jsonl"
    history = [json.loads(line) for line in history_file.read_text().splitlines()] if history_file.is_file() else []
    output = root / "output"
    output.mkdir(parents=True, exist_ok=True)
    (output / "report.json").write_text(report.model_dump_json(indent=2))
    planned = [PlannedActual.model_validate(row) for row in config.get("planned_vs_actual", [])]
    (output / "report.html").write_text(render(report, history, planned))
    # what the deployed endpoint must reproduce before it takes traffic (pipeline.parity)
    reference = parity_reference(
        tuned,
        tokenizer,
        records,
        fmt,
        run_id=config["run_id"],
        count=thresholds.generation_samples,
        max_new_tokens=thresholds.max_new_tokens,
    )
    (output / "parity.json").write_text(reference.model_dump_json(indent=2))
    return report.model_dump(mode="json")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="trainforge-evaluate", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--processing-root", type=Path, default=Path(os.environ.get("TRAINFORGE_PROCESSING_ROOT", "/opt/ml/processing"))
    )
    args, _ = parser.parse_known_args(argv)
    try:
        summary = evaluate_from_contract(args.processing_root)
    except Exception as exc:  # the failure reason goes where the pipeline's failure recorder looks
        failure = args.processing_root / "output" / "failure"
        failure.parent.mkdir(parents=True, exist_ok=True)
        failure.write_text(f"{type(exc).__name__}: {exc}\n")
        traceback.print_exc()
        return 1
    verdict = summary.get("verdict") or {}
    print(
        json.dumps({"event": "evaluated", "passed": verdict.get("passed"), "reasons": verdict.get("reasons")}),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
