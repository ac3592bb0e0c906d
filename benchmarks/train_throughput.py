"""Training throughput: TrainForge's loop against TRL's SFTTrainer and HF Trainer at equal real tokens per step.

    python -m benchmarks.train_throughput --seq-len 256    # CPU: real SmolLM2-135M, LoRA, fp32 and auto
    python -m benchmarks.train_throughput --seq-len 1024 --profile trainforge-auto   # where a step's time goes
    python -m benchmarks.train_throughput --device cuda    # GPU: a ~1B Llama in bf16, full fine-tune, MFU

Every side trains the same model on the same tokenized examples (real chitchat conversations, chat
template, loss on the assistant's tokens), with the same adapter (rank 16, alpha 32, every linear layer),
sequence length and budget of real tokens per step (``--tokens-per-step``): TrainForge and TRL
(``packing=True``, best-fit decreasing, padding-free) train that many tokens' worth of packed rows, HF
Trainer a padded batch of as many whole examples as fill it (benchmarks/train_sides.py). Tokens are counted
at the model's forward between two step ends; a side's rate is its median step after ``--warmup``.

A round runs every side once, in an order that rotates from round to round (no side always runs first on
a warming or cooling machine). A comparison's ratio is the median over rounds of TrainForge's rate divided
by the best peer's rate in that round. Comparisons: fp32 against the peers in fp32 (target >= 2); ``auto``
against the peers' defaults (TRL: bf16 autocast and gradient checkpointing; HF Trainer: fp32), target
>= 3 on a CPU with native bf16; and bf16 against the peers in bf16 when those sides run.
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import statistics
from pathlib import Path
from typing import Any

import torch
from datasets import disable_progress_bars
from transformers.utils import logging as hf_logging

from benchmarks.train_sides import Job, Side, StepMeter, hf_trainer, trainforge, trl

H100_BF16_PEAK_FLOPS = 989e12

SIDES = {
    "trainforge-fp32": Side("TrainForge fp32", trainforge("fp32")),
    "trainforge-auto": Side("TrainForge auto", trainforge("auto")),
    "trl-fp32": Side("TRL SFTTrainer fp32", trl("fp32")),
    "hf-fp32": Side("HF Trainer fp32 (its default)", hf_trainer("fp32")),
    "trl-defaults": Side("TRL SFTTrainer defaults", trl("defaults")),
    "trl-bf16": Side("TRL SFTTrainer bf16", trl("bf16")),
    "hf-bf16": Side("HF Trainer bf16", hf_trainer("bf16")),
}
DEFAULT_SIDES = {
    "cpu": ["trainforge-fp32", "trainforge-auto", "trl-fp32", "hf-fp32", "trl-defaults"],
    "cuda": ["trainforge-auto", "trl-bf16", "hf-bf16"],
}
# (what is compared, TrainForge's side, the peers, target ratio)
COMPARISONS = [
    ("fp32 vs peers in fp32", "trainforge-fp32", ["trl-fp32", "hf-fp32"], 2.0),
    ("auto vs peers' defaults", "trainforge-auto", ["trl-defaults", "hf-fp32"], 3.0),
    ("auto vs peers in bf16", "trainforge-auto", ["trl-bf16", "hf-bf16"], 2.0),
]


def load_model(kind: str, cache: Path, device: str) -> tuple[Any, Any]:
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig

    from trainforge.catalog import resolve_base_model
    from trainforge.training.base_model import materialize

    base = materialize(resolve_base_model("lite" if kind == "smollm2" else "tiny", "", local=True), cache)
    tokenizer = AutoTokenizer.from_pretrained(base)
    if device == "cuda":  # ~1.1B parameters, SmolLM2's tokenizer and architecture family
        config = LlamaConfig(
            vocab_size=len(tokenizer),
            hidden_size=2048,
            intermediate_size=8192,
            num_hidden_layers=16,
            num_attention_heads=32,
            num_key_value_heads=8,
            max_position_embeddings=4096,
            tie_word_embeddings=True,
        )
        return AutoModelForCausalLM.from_config(config, attn_implementation="sdpa"), tokenizer
    return AutoModelForCausalLM.from_pretrained(base, attn_implementation="sdpa"), tokenizer


def examples_for(tokenizer: Any, count: int) -> list[Any]:
    from trainforge.public_data import chitchat_examples
    from trainforge.training.tokenize import encode_record

    return [encode_record(tokenizer, record, "chat") for record in chitchat_examples(count, max_chars=2000)]


def cpu_flags() -> str:
    from trainforge.training.cpu_features import CPUINFO, NATIVE_BF16_FLAGS, cpuinfo_flags

    flags = cpuinfo_flags(CPUINFO) or frozenset()
    return ", ".join(flag for flag in NATIVE_BF16_FLAGS if flag in flags) or "none of " + ", ".join(NATIVE_BF16_FLAGS)


class ProfiledMeter(StepMeter):
    """A meter that also advances a torch profiler's schedule at each step end."""

    profiler: Any = None

    def step_end(self) -> None:
        super().step_end()
        self.profiler.step()


def profile(side: Side, model: Any, tokenizer: Any, examples: list[Any], job: Job) -> None:
    """Where the time of ``side``'s timed steps goes, per op (self time: an op's own, not its children's)."""
    from torch.profiler import ProfilerActivity, schedule

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if job.device == "cuda" else [])
    meter = ProfiledMeter()
    with torch.profiler.profile(
        activities=activities, schedule=schedule(wait=0, warmup=job.warmup, active=job.steps, repeat=1)
    ) as prof:
        meter.profiler = prof
        side(model, tokenizer, examples, job, meter)
    print(
        f"{side.name}: {meter.rate(job.warmup):.1f} tokens/s, {meter.rate(job.warmup, 'cpu'):.1f} per CPU second, "
        "over the profiled steps"
    )
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument(
        "--model", choices=["smollm2", "tiny"], default="smollm2", help="CPU model (GPU always uses the ~1B config)"
    )
    parser.add_argument("--seq-len", type=int, default=256)
    parser.add_argument("--tokens-per-step", type=int, default=2048, help="real-token budget of every side's step")
    parser.add_argument("--steps", type=int, default=4, help="timed steps per side, after --warmup")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3, help="rounds of every side; ratios are medians over rounds")
    parser.add_argument("--first-round", type=int, default=1, help="continue a measurement: its next round's number")
    parser.add_argument("--sides", nargs="+", choices=sorted(SIDES), help="default: the device's usual sides")
    parser.add_argument("--profile", choices=sorted(SIDES), help="profile one side's timed steps instead")
    parser.add_argument("--cache", type=Path, default=Path(".trainforge/cache/base-models"))
    parser.add_argument("--threads", type=int, help="torch's threads (default: one per core)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    seq_len = max(args.seq_len, 2048) if args.device == "cuda" else args.seq_len
    job = Job(
        seq_len=seq_len,
        rows=max(1, args.tokens_per_step // seq_len),
        steps=args.steps,
        warmup=args.warmup,
        device=args.device,
        method="full" if args.device == "cuda" else "lora",
    )
    hf_logging.set_verbosity_error()
    disable_progress_bars()
    torch.manual_seed(0)
    model, tokenizer = load_model(args.model, args.cache, args.device)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    examples = examples_for(tokenizer, 4000)

    def fresh() -> Any:
        model, _ = load_model(args.model, args.cache, args.device)
        model.load_state_dict(state)
        with contextlib.suppress(AttributeError):
            model.to("cuda" if args.device == "cuda" else "cpu")
        return model

    print(
        f"machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, native bf16 "
        f"flags: {cpu_flags()}, torch {torch.__version__}, device {args.device}"
    )
    print(
        f"model: {args.model if args.device == 'cpu' else 'llama-1.1b (config)'}, method {job.method}, seq {job.seq_len}, "
        f"{job.budget} real tokens per step ({job.rows} packed rows), {job.steps} timed steps after {job.warmup} warm-up"
    )
    if args.profile:
        profile(SIDES[args.profile], fresh(), tokenizer, examples, job)
        return
    names = args.sides or DEFAULT_SIDES[args.device]
    clocks = ("wall", "cpu")
    rates: dict[str, dict[str, list[float]]] = {clock: {name: [] for name in names} for clock in clocks}
    for round_index in range(args.first_round - 1, args.first_round - 1 + args.rounds):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            meter, extra = SIDES[name](fresh(), tokenizer, examples, job)
            for clock in clocks:
                rates[clock][name].append(meter.rate(job.warmup, clock))
            per_step = statistics.mean(meter.tokens[job.warmup :])
            notes = ", ".join(f"{k} {v:.1%}" if isinstance(v, float) else f"{k} {v}" for k, v in extra.items())
            print(
                f"round {round_index + 1}: {SIDES[name].name:32s} {rates['wall'][name][-1]:8.1f} tok/s "
                f"{rates['cpu'][name][-1]:8.1f} tok/CPU-s  {per_step:7.0f} real tokens/step  ({notes})",
                flush=True,
            )
    for clock in clocks:
        unit = "tok/s" if clock == "wall" else "tok/CPU-s"
        print(f"\n{'side':32s} per round ({unit})")
        for name in names:
            print(f"{SIDES[name].name:32s} " + " / ".join(f"{rate:.1f}" for rate in rates[clock][name]))
        for label, ours, peers, target in COMPARISONS:
            present = [peer for peer in peers if peer in names]
            if ours not in names or not present:
                continue
            by_round = rates[clock]
            ratios = [by_round[ours][i] / max(by_round[peer][i] for peer in present) for i in range(args.rounds)]
            verdict = "met" if statistics.median(ratios) >= target else "NOT met"
            print(
                f"{label} ({unit}): ratio {statistics.median(ratios):.2f} (median; rounds "
                f"{', '.join(f'{r:.2f}' for r in ratios)}) against the best of {', '.join(present)}; "
                f"target >= {target:g}: {verdict}"
            )
    if args.device == "cuda" and "trainforge-auto" in names:
        params = sum(p.numel() for p in model.parameters())
        layers, hidden = model.config.num_hidden_layers, model.config.hidden_size
        flops_per_token = 6 * params + 12 * layers * hidden * job.seq_len
        best = max(rates["wall"]["trainforge-auto"])
        print(
            f"MFU (H100 bf16 dense peak {H100_BF16_PEAK_FLOPS / 1e12:.0f} TFLOP/s): {best * flops_per_token / H100_BF16_PEAK_FLOPS:.1%}"
        )


if __name__ == "__main__":
    main()
