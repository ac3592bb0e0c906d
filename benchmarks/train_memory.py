"""Training memory: the peak RSS of ``trainforge-train`` per token in flight, beside the estimate.

    python benchmarks/train_memory.py                                   # SmolLM2-135M, LoRA, fp32: 2,048 and
                                                                        # 8,192 tokens a step, +- checkpointing
    python benchmarks/train_memory.py --tokens 8192 --precision auto    # bf16 where the CPU runs it natively
    python benchmarks/train_memory.py --source /tmp/before/src          # train with an earlier commit's code
    python benchmarks/train_memory.py --defaults --examples 300 1200   # the job spec's default settings, trained
                                                                        # to the end: the peak against the host
    python benchmarks/train_memory.py --models tiny smollm2 --methods lora full --tokens 1024 4096 \
        --checkpointing off                                             # the plan's estimate: 2 models x 2
                                                                        # methods x 2 sequence lengths

Each setting is one ``trainforge-train`` process on its own /opt/ml tree: real chitchat conversations with
the chat template and assistant-only loss, packed into ``--rows`` rows of ``tokens / rows`` tokens a
micro-batch (8 x 256 and 8 x 1,024 by default, the second the job spec's default), LoRA rank 16 (alpha 32)
on every linear layer with the spec's default dropout (0.05) or full fine-tuning (``--methods``),
``--steps`` optimizer steps, no validation.
Its peak RSS is the kernel's high-water mark for that process (``VmHWM``), which the launcher's watch reads
every 50 ms while it runs (``wait4``'s ``ru_maxrss`` would count this parent's RSS, which a child started by
``vfork`` inherits at its ``exec``). The estimate is ``trainforge.planning.estimate_peak`` for the same
settings: the figure ``trainforge plan`` shows (its ``fit_to_memory`` estimates with it) and what the run fits
its settings with (any adjustment it made is printed).
``--source`` runs the training process on another copy of the package (``git archive COMMIT src | tar -x
-C DIR``) against today's estimate, for before/after figures. A process whose RSS passes
``--rss-limit-gb`` is stopped and reported as over it: on a shared machine a run must not reach the
kernel's out-of-memory killer, which may pick someone else's process.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from trainforge.local.launcher import PeakWatch
from trainforge.planning import ModelShape, estimate_peak
from trainforge.training.config import TrainConfig

MB, GB = 1_000_000, 1_000_000_000


def base_model(kind: str, cache: Path) -> Path:
    from trainforge.catalog import resolve_base_model
    from trainforge.training.base_model import materialize

    return materialize(resolve_base_model("lite" if kind == "smollm2" else "tiny", "", local=True), cache)


def opt_ml(folder: Path, base: Path, data: Path, config: TrainConfig) -> Path:
    from trainforge.local.opt_ml import prepare_training_tree

    return prepare_training_tree(folder, {"train": data, "base_model": base}, config.to_hyperparameters())


def train(root: Path, source: Path | None, limit: int) -> dict[str, Any]:
    """Run ``trainforge-train`` on ``root``: its peak RSS, its JSON records (each with ``_at``, the seconds
    since the start it arrived at), its wall and CPU seconds, and whether the RSS limit stopped it."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1"}
    if source is not None:
        env["PYTHONPATH"] = str(source)
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "trainforge.training.entrypoint", "--opt-ml", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    watch = PeakWatch(process, every=0.05, limit=limit)
    assert process.stdout is not None
    records = [
        {**json.loads(line), "_at": time.perf_counter() - started} for line in process.stdout if line.startswith("{")
    ]
    _, status, usage = os.wait4(process.pid, 0)  # the child's own CPU seconds, which wait() does not give
    wall = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    watch.join()
    return {
        "peak": watch.peak,
        "records": records,
        "code": process.returncode,
        "stopped": watch.stopped,
        "wall": wall,
        "cpu": usage.ru_utime + usage.ru_stime,
    }


def spec_defaults(args: argparse.Namespace) -> None:
    """A new user's first own run: a job spec with no ``hyperparameters:`` (LoRA on SmolLM2-135M, the
    spec's defaults, the pipeline's 5% validation split), on the quickstart's conversations (at most 400
    characters, about 130 tokens), trained to the end of its epoch."""
    from trainforge.public_data import chitchat_examples, write_jsonl
    from trainforge.spec import Hyperparameters

    base = base_model("smollm2", args.cache)
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")  # the machine's memory
    print("examples | steps | peak RSS GB | of the machine's memory | estimate GB | exit | adjustments")
    for examples in args.examples:
        with tempfile.TemporaryDirectory() as work:
            data = write_jsonl(chitchat_examples(examples, seed=0), Path(work) / "data" / "train.jsonl")
            config = TrainConfig(
                **Hyperparameters().model_dump(),
                method="lora",
                data_format="chat",
                validation_fraction=0.05,
                device="cpu",
            )
            run = train(opt_ml(Path(work) / "run", base, data.parent, config), None, int(args.rss_limit_gb * GB))
        memory = next((r for r in run["records"] if r.get("event") == "memory"), {})
        steps = [r for r in run["records"] if "loss" in r and "step" in r]
        adjusted = [f"{r['setting']} {r['from']}->{r['to']}" for r in run["records"] if r.get("event") == "adjusted"]
        print(
            f"{examples} | {len(steps)} | {run['peak'] / GB:.2f} | {run['peak'] / total:.0%} of "
            f"{total / GB:.1f} GB | {memory.get('estimate_mb', 0) * 2**20 / GB:.2f} | "
            f"{'stopped' if run['stopped'] else run['code']} | {', '.join(adjusted) or 'none'}",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", choices=["smollm2", "tiny"], default=["smollm2"])
    parser.add_argument("--methods", nargs="+", choices=["lora", "full"], default=["lora"])
    parser.add_argument("--tokens", type=int, nargs="+", default=[2048, 8192], help="tokens per micro-batch")
    parser.add_argument("--rows", type=int, default=8, help="packed rows a micro-batch, each tokens / rows long")
    parser.add_argument("--checkpointing", choices=["off", "on", "both"], default="both")
    parser.add_argument("--precision", choices=["fp32", "bf16", "auto"], default="fp32")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--lora-dropout", type=float, default=TrainConfig().lora_dropout, help="the spec's default")
    parser.add_argument("--examples", type=int, nargs="+", default=[4000], help="conversations (--defaults: each)")
    parser.add_argument("--source", type=Path, help="the trainforge package's parent folder to train with")
    parser.add_argument("--rss-limit-gb", type=float, default=14.0)
    parser.add_argument("--cache", type=Path, default=Path(".trainforge/cache/base-models"))
    parser.add_argument(
        "--defaults",
        action="store_true",
        help="train SmolLM2-135M with the job spec's default hyperparameters for their whole epoch on each "
        "--examples count of the quickstart's conversations; the peak against this machine's memory",
    )
    args = parser.parse_args()
    if args.defaults:
        spec_defaults(args)
        return

    from trainforge.public_data import chitchat_examples, write_jsonl

    checkpointing = {"off": [False], "on": [True], "both": [False, True]}[args.checkpointing]
    rows = []
    with tempfile.TemporaryDirectory() as work:
        data = write_jsonl(chitchat_examples(args.examples[0], max_chars=2000), Path(work) / "data" / "train.jsonl")
        for model in args.models:
            base = base_model(model, args.cache)
            shape = ModelShape.from_config(json.loads((base / "config.json").read_text()))
            for method, tokens, gc in itertools.product(args.methods, args.tokens, checkpointing):
                config = TrainConfig(
                    method=method,
                    max_steps=args.steps,
                    batch_size=args.rows,
                    max_seq_len=tokens // args.rows,
                    lora_rank=16,
                    lora_alpha=32,
                    lora_dropout=args.lora_dropout,
                    learning_rate=1e-4,
                    eval_every=10_000,
                    checkpoint_every=10_000,
                    validation_fraction=0.0,
                    gradient_checkpointing=gc,
                    precision=args.precision,
                    device="cpu",
                )
                root = opt_ml(Path(work) / f"run-{model}-{method}-{tokens}-{gc}", base, data.parent, config)
                run = train(root, args.source, int(args.rss_limit_gb * GB))
                precision = next((r for r in run["records"] if r.get("event") == "precision"), {})
                bf16 = bool(precision.get("bf16", args.precision == "bf16"))
                estimate = estimate_peak(shape, config, method, device="cpu", bf16=bf16)
                steps = [r for r in run["records"] if "loss" in r and "step" in r]
                adjusted = [
                    f"{r['setting']} {r['from']}->{r['to']}" for r in run["records"] if r.get("event") == "adjusted"
                ]
                rows.append((model, shape, method, tokens, config, gc, bf16, run, estimate, steps, adjusted))
                print(
                    json.dumps(
                        {
                            "model": model,
                            "method": method,
                            "tokens": tokens,
                            "checkpointing": gc,
                            "peak": run["peak"],
                            "code": run["code"],
                        }
                    ),
                    flush=True,
                )
    import torch

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}")
    print(
        f"LoRA r16 dropout {args.lora_dropout} (full: every weight), {args.steps} steps, "
        f"source: {args.source or 'this tree'}"
    )
    print(
        "model | method | tokens | micro-batch | checkpointing | precision | peak RSS GB | MB/token | estimate GB | "
        "MB/token | measured/estimate | s/step (median) | adjustments"
    )
    for model, shape, method, tokens, config, gc, bf16, run, estimate, steps, adjusted in rows:
        if run["stopped"]:
            peak = f"> {args.rss_limit_gb:.1f} (stopped in step {len(steps) + 1})"
            per_token, ratio = f"> {args.rss_limit_gb * GB / tokens / MB:.2f}", "-"
        else:
            peak = f"{run['peak'] / GB:.2f}" + ("" if run["code"] == 0 else f" (exit {run['code']})")
            per_token, ratio = f"{run['peak'] / tokens / MB:.2f}", f"{run['peak'] / estimate.total:.2f}"
        seen = [0] + [record["tokens_seen"] for record in steps]
        seconds = [(seen[i + 1] - seen[i]) / record["tokens_per_s"] for i, record in enumerate(steps)]
        print(
            f"{model} ({shape.parameters / 1e6:.0f}M) | {method} | {tokens} | {config.batch_size} x "
            f"{config.max_seq_len} | {'on' if gc else 'off'} | {'bf16' if bf16 else 'fp32'} | {peak} | {per_token} | {estimate.total / GB:.2f} | "
            f"{estimate.total / tokens / MB:.2f} | {ratio} | "
            f"{statistics.median(seconds) if seconds else float('nan'):.1f} | {', '.join(adjusted) or 'none'}"
        )


if __name__ == "__main__":
    main()
