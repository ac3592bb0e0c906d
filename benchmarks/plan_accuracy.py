"""How close a plan's time comes: the quickstart's training planned, then run by a real ``trainforge-train``
process on this machine.

    python -m benchmarks.plan_accuracy [--repeat N]

The case is planned as the local runner plans it (``trainforge.planning.make_plan`` on this machine, from
the dataset report of real chitchat conversations validated with the base model's tokenizer), then trained
by ``trainforge-train`` on its own /opt/ml tree. Time: the process's wall time, and its CPU seconds over its
threads (what the wall time would be with its cores to itself: on a shared machine the wall time measures
the neighbours too), against the plan's range for the training process (start-up and steps). The plan's
peak-memory estimate is measured by ``benchmarks/train_memory.py`` (the plan estimates with the same
``estimate_peak``).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from benchmarks.train_memory import GB, base_model, opt_ml, train
from trainforge.data import ValidationOptions, validate_dataset
from trainforge.local.file_store import FileStore
from trainforge.pipeline.plan_step import local_machine
from trainforge.planning.duration import span
from trainforge.planning.plan import PlanInputs, make_plan
from trainforge.planning.prices import load_prices
from trainforge.public_data import chitchat_examples, write_jsonl
from trainforge.quickstart import SPEC as QUICKSTART
from trainforge.spec import JobSpec
from trainforge.training.config import TrainConfig


def job(model: str, method: str, hyperparameters: dict[str, Any], fraction: float) -> JobSpec:
    return JobSpec.model_validate(
        {
            "name": "accuracy",
            "base_model": "lite" if model == "smollm2" else "tiny",
            "method": method,
            "data": {"train": "datasets/chat/train.jsonl", "format": "chat", "validation_fraction": fraction},
            "hyperparameters": hyperparameters,
            "deploy": {"target": "none"},
        }
    )


def plan_and_train(spec: JobSpec, model_dir: Path, data: Path, work: Path) -> dict[str, Any]:
    options = ValidationOptions.from_spec(spec, tokenizer_file=model_dir / "tokenizer.json")
    report = validate_dataset([data.as_uri()], FileStore(), options)
    machine = local_machine()
    plan = make_plan(
        PlanInputs(
            spec=spec,
            report=report,
            config=json.loads((model_dir / "config.json").read_text()),
            files=[path.name for path in model_dir.iterdir()],
            base_bytes=sum(path.stat().st_size for path in model_dir.glob("*.safetensors")),
            machines=[machine],
            evaluation=machine,
            prices=load_prices(),
            region="local",
            local=True,
        )
    )
    option = plan.requested
    assert option.memory is not None and option.time is not None, plan.notes
    config = TrainConfig(
        **spec.hyperparameters.model_dump(),
        method=spec.method,
        data_format="chat",
        validation_fraction=spec.data.validation_fraction,
        device="cpu",
    )
    run = train(opt_ml(work, model_dir, data.parent, config), None, int(14 * GB))
    return {**run, "plan": plan, "threads": torch.get_num_threads(), "load": os.getloadavg()[0]}


def quickstart(args: argparse.Namespace, data: Path, work: Path) -> None:
    spec = job("smollm2", "lora", dict(QUICKSTART["hyperparameters"]), QUICKSTART["data"]["validation_fraction"])
    for attempt in range(args.repeat):
        run = plan_and_train(spec, base_model("smollm2", args.cache), data, work / f"quickstart-{attempt}")
        time_plan = run["plan"].requested.time
        low = time_plan.process_start_seconds + time_plan.training_seconds_low
        high = time_plan.process_start_seconds + time_plan.training_seconds_high
        alone = run["cpu"] / run["threads"]
        steps = [r for r in run["records"] if "loss" in r and "step" in r]
        share = run["cpu"] / run["wall"]  # the CPU the process got: its parts alone, at the same share
        first, last = steps[0]["_at"], steps[-1]["_at"]
        per_step = (last - first) / max(len(steps) - 1, 1)
        print(
            f"  parts, CPU seconds (wall x {share:.2f}): start to the first step's end {first * share:.0f} (of which "
            f"one step about {per_step * share:.0f}), the steps {(last - first + per_step) * share:.0f}, after the "
            f"last step {(run['wall'] - last) * share:.0f}; planned start {time_plan.process_start_seconds:.0f}, steps "
            f"{span(time_plan.training_seconds_low, time_plan.training_seconds_high)}",
            flush=True,
        )
        print(
            f"planned {span(low, high)} (middle {(low + high) / 2:.0f} s) | wall {run['wall']:.0f} s | CPU "
            f"{run['cpu']:.0f} s / {run['threads']} threads = {alone:.0f} s | measured / planned middle: wall "
            f"{run['wall'] / ((low + high) / 2):.2f}, alone {alone / ((low + high) / 2):.2f} | load {run['load']:.1f}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=1, help="how many times")
    parser.add_argument("--cache", type=Path, default=Path(".trainforge/cache/base-models"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        data = write_jsonl(chitchat_examples(1200, seed=0), work / "data" / "train.jsonl")
        quickstart(args, data, work)


if __name__ == "__main__":
    main()
