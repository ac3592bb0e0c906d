"""Validator throughput and memory on a generated chat JSONL, against a raw ``orjson.loads`` pass.

    python benchmarks/validate_throughput.py [--mb 200] [--tokens] [--rounds 5]
    python benchmarks/validate_throughput.py --scaling [--mb 2000] [--processes 2]

Prints MB/s per core (megabytes over the process's CPU seconds, so neither a waiting disk nor a second
thread can flatter it) for the validator and for the baseline measured in the same run, their ratio, and
the validator's peak RSS. Each round measures the baseline and then the validator, so the two sides of a
round's ratio see the same state of a shared machine; the ratio printed is the median over the rounds. Then the same validation on the pure-Python twins of the
compiled loops (``TRAINFORGE_PURE_PYTHON=1``), the fallback where no C compiler built them. Targets (issue #2): >= 100 MB/s
per core without token stats, ratio >= 0.3, peak RSS <= 300 MB for a 1 GB file.

``--scaling`` measures sharded validation instead (issue #19): the same file validated by one process (the
whole pass) and by ``--processes`` workers over 256 MiB shards (``trainforge.data.parallel``), wall-clock
seconds each in a fresh process, and prints the scaling ratio (one process's time over the pool's) with the
load average, since the pool's gain depends on idle cores.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

WORDS = [
    "the",
    "order",
    "shipped",
    "late",
    "customer",
    "refund",
    "account",
    "password",
    "reset",
    "invoice",
    "billing",
    "plan",
    "upgrade",
    "support",
    "ticket",
    "engineer",
    "replied",
    "thanks",
    "please",
    "help",
    "error",
    "message",
    "login",
    "device",
    "battery",
    "screen",
    "warranty",
    "store",
    "return",
    "policy",
    "delivery",
    "address",
    "tracking",
    "number",
    "weekend",
    "monday",
    "schedule",
    "meeting",
    "report",
    "quarterly",
]


def generate(path: Path, megabytes: int, seed: int = 0) -> int:
    """A chat JSONL of realistic shape: 1-3 turns of 20-120 words each, some duplicates and PII."""
    rng = random.Random(seed)
    target = megabytes * 1_000_000
    written = 0
    lines = 0
    with path.open("wb") as handle:
        while written < target:
            messages = [{"role": "system", "content": "You are a helpful support assistant."}]
            for _ in range(rng.randint(1, 3)):
                messages.append({"role": "user", "content": " ".join(rng.choices(WORDS, k=rng.randint(20, 120)))})
                messages.append({"role": "assistant", "content": " ".join(rng.choices(WORDS, k=rng.randint(20, 120)))})
            if rng.random() < 0.01:
                messages[-1]["content"] += " write to jane.doe@example.com"
            line = orjson.dumps({"messages": messages}) + b"\n"
            handle.write(line)
            written += len(line)
            lines += 1
    return lines


def baseline(path: Path) -> float:
    start = time.process_time()
    with path.open("rb") as handle:
        for line in handle:
            orjson.loads(line)
    return time.process_time() - start


def measure_validator(path: Path, tokens: bool, pure: bool = False) -> tuple[float, float, int]:
    """Run the validator in a fresh process so its peak RSS is its own: (CPU seconds, peak RSS MB, records)."""
    code = (
        "import sys,time,resource;from trainforge.data import validate_dataset,ValidationOptions;"
        "from trainforge.local.file_store import FileStore;from pathlib import Path;"
        "tok=Path(sys.argv[2]) if len(sys.argv)>2 else None;"
        "t=time.process_time();r=validate_dataset([Path(sys.argv[1]).as_uri()],FileStore(),"
        "ValidationOptions(validation_fraction=0.1,tokenizer_file=tok));e=time.process_time()-t;"
        "print(e,resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,r.valid_records,r.exact_duplicates,r.near_duplicates)"
    )
    args = [sys.executable, "-c", code, str(path)]
    if tokens:
        from trainforge.catalog import resolve_base_model
        from trainforge.training.base_model import materialize

        base = materialize(resolve_base_model("lite", "", local=True), Path(".trainforge/cache/base-models"))
        args.append(str(base / "tokenizer.json"))
    env = {**os.environ, "TRAINFORGE_PURE_PYTHON": "1" if pure else "0"}
    out = subprocess.run(args, check=True, capture_output=True, text=True, env=env).stdout.split()
    return float(out[0]), int(out[1]) / 1024, int(out[2])


def measure_wall(path: Path, processes: int) -> tuple[float, float, int, str]:
    """``validate_parallel`` with ``processes`` workers, in a fresh process: (wall seconds, CPU seconds of it
    and its workers, records, the report as JSON for the caller to compare across runs)."""
    code = (
        "import sys,time,json,resource as R;from pathlib import Path;from trainforge.data.parallel import validate_parallel;"
        "from trainforge.local.file_store import FileStore;"
        "c=lambda:sum(u.ru_utime+u.ru_stime for u in (R.getrusage(R.RUSAGE_SELF),R.getrusage(R.RUSAGE_CHILDREN)));"
        "t=time.perf_counter();c0=c();r=validate_parallel([Path(sys.argv[1]).as_uri()],FileStore(),processes=int(sys.argv[2]));"
        "print(time.perf_counter()-t,c()-c0,r.records);"
        "print(json.dumps(r.model_dump(mode='json',exclude={'created_at'}),sort_keys=True))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), str(processes)], check=True, capture_output=True, text=True
    ).stdout.splitlines()
    seconds, cpu, records = out[0].split()
    return float(seconds), float(cpu), int(records), out[1]


def scaling(megabytes: int, processes: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        lines = generate(path, megabytes)
        size_mb = path.stat().st_size / 1e6
        load_before = os.getloadavg()
        one_s, one_cpu, one_records, one_report = measure_wall(path, 1)
        pool_s, pool_cpu, pool_records, pool_report = measure_wall(path, processes)
        load_after = os.getloadavg()
    assert one_records == pool_records == lines, (one_records, pool_records, lines)
    assert one_report == pool_report, "the sharded report differs from the whole pass's"
    print(f"file: {size_mb:.0f} MB, {lines} chat records; {len(os.sched_getaffinity(0))} cores")
    print(f"1 process (whole pass): {one_s:6.1f} s wall, {size_mb / one_s:6.1f} MB/s; {one_cpu:6.1f} CPU s")
    print(f"{processes} processes (shards):  {pool_s:6.1f} s wall, {size_mb / pool_s:6.1f} MB/s; {pool_cpu:6.1f} CPU s")
    print(f"scaling ratio: {one_s / pool_s:.2f} (ideal {processes}); reports equal field for field")
    # with idle cores the pool's wall time is its CPU time spread over the workers: what the shards would
    # give on a machine that is not shared
    print(
        f"CPU the shards cost over the whole pass: {pool_cpu / one_cpu:.2f}x; on {processes} idle cores the ratio could reach {processes * one_cpu / pool_cpu:.2f}"
    )
    print(
        "load average (1, 5, 15 min) before: {:.2f} {:.2f} {:.2f}, after: {:.2f} {:.2f} {:.2f}".format(
            *load_before, *load_after
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=int, default=200, help="size of the generated file in MB")
    parser.add_argument("--tokens", action="store_true", help="also count tokens with the local base model's tokenizer")
    parser.add_argument(
        "--rounds", type=int, default=5, help="rounds of baseline then validator; the median ratio is printed"
    )
    parser.add_argument("--scaling", action="store_true", help="sharded validation: 1 process vs --processes")
    parser.add_argument("--processes", type=int, default=2, help="workers for --scaling")
    args = parser.parse_args()
    if args.scaling:
        scaling(args.mb, args.processes)
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.jsonl"
        lines = generate(path, args.mb)
        size_mb = path.stat().st_size / 1e6
        rounds = []
        for _ in range(args.rounds):
            base_s = baseline(path)
            val_s, rss_mb, valid = measure_validator(path, args.tokens)
            rounds.append((base_s, val_s, rss_mb))
        pure_s, pure_rss_mb, pure_valid = measure_validator(path, args.tokens, pure=True)
    assert valid == pure_valid == lines, (valid, pure_valid, lines)
    base_s, val_s, rss_mb = min(r[0] for r in rounds), min(r[1] for r in rounds), max(r[2] for r in rounds)
    ratios = [b / v for b, v, _ in rounds]
    tokens = " + tokens" if args.tokens else ""
    print(f"file: {size_mb:.0f} MB, {lines} chat records")
    print(
        f"{args.rounds} rounds, MB/s per core baseline vs validator (ratio): "
        + ", ".join(f"{size_mb / b:.1f} vs {size_mb / v:.1f} ({b / v:.2f})" for b, v, _ in rounds)
    )
    print(f"baseline orjson.loads: {size_mb / base_s:8.1f} MB/s per core (best round)")
    print(f"validator{tokens}:     {size_mb / val_s:8.1f} MB/s per core (best round)")
    print(f"ratio validator/baseline: {statistics.median(ratios):.2f} (median of the rounds' ratios)")
    print(f"validator peak RSS: {rss_mb:.0f} MB")
    print(
        f"pure-Python twins (no compiler){tokens}: {size_mb / pure_s:.1f} MB/s per core, peak RSS {pure_rss_mb:.0f} MB"
    )


if __name__ == "__main__":
    main()
