"""Continuous evaluation: the versions a deployed endpoint serves (its champion, and a challenger under test)
re-scored while they serve, as a processing job (``python -m trainforge.evaluation.continuous``):

    input/config/continuous.json    endpoint, variants (name, version, role), data format and split, limits
    input/model-VARIANT/            each variant's model folder
    input/data/                     the newest validated data (its held-out side, as evaluation split it)
    input/captured/captured.jsonl   captured exchanges: variant, messages, the answer served, a reference or null
    input/ops/ops.json              per-variant requests: status, latency, completion tokens
    output/report.json, report.md

Per variant: perplexity on the newest data; greedy answers regenerated for the captured prompts that have a
reference, and the answers actually served to them, scored against it (exact match, token F1, ROUGE-L);
latency, error rate and token throughput from the serving figures. Each with a 95% interval: bootstrap
over examples or requests, Wilson for rates. The challenger is compared with the champion paired on the
same examples where it can be (perplexity, regenerated answers), and the verdict fails when it is worse
beyond its interval on a quality figure or its error rate.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from trainforge.contracts import (
    ContinuousEvaluationReport,
    DataFormat,
    Estimate,
    GateVerdict,
    MetricComparison,
    VariantEvaluation,
)
from trainforge.evaluation.bootstrap import mean_difference, paired_interval, relative_ppl_improvement
from trainforge.evaluation.text_metrics import METRICS


def estimate(name: str, statistic: Any, size: int, higher_is_better: bool, seed: int) -> Estimate:
    """``statistic(indices)`` over all ``size`` examples, with its bootstrap interval."""
    low, high = paired_interval(statistic, size, seed=seed)
    value = statistic(np.arange(size))
    return Estimate(name=name, value=value, ci_low=low, ci_high=high, n=size, higher_is_better=higher_is_better)


def mean_estimate(name: str, values: list[float], higher_is_better: bool, seed: int) -> Estimate:
    array = np.array(values, dtype=float)
    return estimate(name, lambda indices: float(array[indices].mean()), len(array), higher_is_better, seed)


def rate_estimate(name: str, events: int, total: int) -> Estimate:
    """Wilson score interval: sound at a rate of 0 or with few requests, where a bootstrap is not."""
    z = 1.96
    rate = events / total
    centre = (rate + z * z / (2 * total)) / (1 + z * z / total)
    half = z * math.sqrt(rate * (1 - rate) / total + z * z / (4 * total * total)) / (1 + z * z / total)
    return Estimate(
        name=name,
        value=rate,
        ci_low=max(0.0, centre - half),
        ci_high=min(1.0, centre + half),
        n=total,
        higher_is_better=False,
    )


def perplexity_estimate(sums: np.ndarray, counts: np.ndarray, seed: int) -> Estimate:
    def ppl(indices: np.ndarray) -> float:
        return float(np.exp(sums[indices].sum() / max(int(counts[indices].sum()), 1)))

    return estimate("data_perplexity", ppl, len(sums), False, seed)


def ops_estimates(requests: list[dict[str, Any]], seed: int) -> list[Estimate]:
    """Latency (mean), error rate and token throughput of the requests a variant answered."""
    if not requests:
        return []
    latency = [float(r["latency_ms"]) for r in requests]
    errors = sum(int(r["status"]) >= 500 for r in requests)
    tokens = np.array([float(r.get("completion_tokens", 0)) for r in requests])
    seconds = np.array(latency) / 1000

    def throughput(indices: np.ndarray) -> float:
        return float(tokens[indices].sum() / max(seconds[indices].sum(), 1e-9))

    return [
        mean_estimate("latency_ms", latency, False, seed),
        rate_estimate("error_rate", errors, len(requests)),
        estimate("tokens_per_s", throughput, len(tokens), True, seed),
    ]


def _comparison(
    name: str, champion: Estimate, challenger: Estimate, interval: tuple[float, float], delta: float
) -> MetricComparison:
    return MetricComparison(
        name=name,
        base=champion.value,
        tuned=challenger.value,
        delta=delta,
        ci_low=interval[0],
        ci_high=interval[1],
        higher_is_better=champion.higher_is_better,
    )


def unpaired_comparison(
    name: str, champion: list[float], challenger: list[float], higher_is_better: bool, seed: int
) -> MetricComparison:
    """Different requests went to each variant: each side resampled on its own; delta positive is better."""
    rng = np.random.default_rng(seed)
    a, b = np.array(champion, dtype=float), np.array(challenger, dtype=float)
    sign = 1.0 if higher_is_better else -1.0
    draws = [sign * (rng.choice(b, len(b)).mean() - rng.choice(a, len(a)).mean()) for _ in range(1000)]
    return MetricComparison(
        name=name,
        base=float(a.mean()),
        tuned=float(b.mean()),
        delta=float(sign * (b.mean() - a.mean())),
        ci_low=float(np.percentile(draws, 2.5)),
        ci_high=float(np.percentile(draws, 97.5)),
        higher_is_better=higher_is_better,
    )


class Scorer:
    """Everything computed per variant, kept for the paired comparisons."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self.nll: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.regenerated: dict[str, dict[str, np.ndarray]] = {}
        self.requests: dict[str, list[dict[str, Any]]] = {}

    def variant(
        self,
        name: str,
        model_dir: Path,
        data: tuple[DataFormat, list[dict[str, Any]]],
        captured: list[dict[str, Any]],
        requests: list[dict[str, Any]],
        max_new_tokens: int,
    ) -> list[Estimate]:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        from trainforge.evaluation.perplexity import example_nll
        from trainforge.evaluation.scoring import generate
        from trainforge.training.tokenize import encode_record

        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        estimates = []
        fmt, records = data
        if records:
            self.nll[name] = example_nll(model, [encode_record(tokenizer, record, fmt) for record in records])
            estimates.append(perplexity_estimate(*self.nll[name], self.seed))
        with_reference = [c for c in captured if c["reference"] is not None]
        if with_reference:
            answers = [generate(model, tokenizer, c["messages"], max_new_tokens) for c in with_reference]
            self.regenerated[name] = {
                metric: np.array([score(a, c["reference"]) for a, c in zip(answers, with_reference, strict=True)])
                for metric, score in METRICS.items()
            }
            estimates += [mean_estimate(m, list(v), True, self.seed) for m, v in self.regenerated[name].items()]
        served = [c for c in with_reference if c["variant"] == name and c["answer"] is not None]
        if served:
            for metric, score in METRICS.items():
                values = [score(c["answer"], c["reference"]) for c in served]
                estimates.append(mean_estimate(f"served_{metric}", values, True, self.seed))
        self.requests[name] = requests
        return estimates + ops_estimates(requests, self.seed)

    def compare(self, champion: VariantEvaluation, challenger: VariantEvaluation) -> list[MetricComparison]:
        a, b = champion.variant, challenger.variant
        found = {e.name: e for e in champion.metrics}, {e.name: e for e in challenger.metrics}
        comparisons = []
        if a in self.nll and b in self.nll and len(self.nll[a][0]) == len(self.nll[b][0]):
            statistic = relative_ppl_improvement(self.nll[a], self.nll[b])
            interval = paired_interval(statistic, len(self.nll[a][0]), seed=self.seed)
            comparisons.append(
                _comparison(
                    "data_perplexity",
                    found[0]["data_perplexity"],
                    found[1]["data_perplexity"],
                    interval,
                    statistic(np.arange(len(self.nll[a][0]))),
                )
            )
        for metric in METRICS if a in self.regenerated and b in self.regenerated else ():
            base, tuned = self.regenerated[a][metric], self.regenerated[b][metric]
            interval = paired_interval(mean_difference(base, tuned), len(base), seed=self.seed)
            comparisons.append(
                _comparison(metric, found[0][metric], found[1][metric], interval, float(tuned.mean() - base.mean()))
            )
        if self.requests.get(a) and self.requests.get(b):
            latency = [[float(r["latency_ms"]) for r in self.requests[v]] for v in (a, b)]
            comparisons.append(unpaired_comparison("latency_ms", latency[0], latency[1], False, self.seed))
            errors = [[float(int(r["status"]) >= 500) for r in self.requests[v]] for v in (a, b)]
            comparisons.append(unpaired_comparison("error_rate", errors[0], errors[1], False, self.seed))
        return comparisons


#: figures whose significant loss fails the challenger (latency is reported, not judged: a larger model may be slower)
JUDGED = {"data_perplexity", "token_f1", "rouge_l", "exact_match", "error_rate"}


def verdict(comparisons: list[MetricComparison]) -> GateVerdict:
    worse = [c for c in comparisons if c.name in JUDGED and c.ci_high < 0]
    reasons = [
        f"{c.name}: the challenger is worse ({c.tuned:.4g} against {c.base:.4g}, 95% CI of the gain [{c.ci_low:+.4g}, {c.ci_high:+.4g}])"
        for c in worse
    ]
    return GateVerdict(
        passed=not worse, reasons=reasons or ["no figure shows the challenger worse beyond its interval"]
    )


def markdown(report: ContinuousEvaluationReport) -> str:
    lines = [f"# Continuous evaluation of {report.endpoint}", "", f"{report.created_at:%Y-%m-%d %H:%M} UTC", ""]
    for variant in report.variants:
        lines += [
            f"## {variant.variant} (version {variant.version}, {variant.role})",
            "",
            "| figure | value | 95% CI | n |",
            "|---|---|---|---|",
        ]
        lines += [f"| {e.name} | {e.value:.4g} | [{e.ci_low:.4g}, {e.ci_high:.4g}] | {e.n} |" for e in variant.metrics]
        lines.append("")
    if report.comparisons:
        lines += [
            "## Challenger against champion",
            "",
            "| figure | champion | challenger | gain | 95% CI of the gain |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {c.name} | {c.base:.4g} | {c.tuned:.4g} | {c.delta:+.4g} | [{c.ci_low:+.4g}, {c.ci_high:+.4g}] |"
            for c in report.comparisons
        ]
        lines.append("")
    if report.verdict:
        lines += [
            f"Verdict: {'passed' if report.verdict.passed else 'FAILED'}",
            "",
            *(f"- {r}" for r in report.verdict.reasons),
        ]
    return "\n".join(lines) + "\n"


def evaluate_endpoint(root: Path) -> ContinuousEvaluationReport:
    from trainforge.data.records import load_records
    from trainforge.data.split import split_records

    inputs = root / "input"
    config = json.loads((inputs / "config" / "continuous.json").read_text())
    seed = int(config.get("seed", 0))
    data: tuple[DataFormat, list[dict[str, Any]]] = (config.get("data_format") or "chat", [])
    if (inputs / "data").is_dir() and any((inputs / "data").iterdir()):
        fmt, records = load_records(inputs / "data", config.get("data_format") or "auto")
        if config.get("split"):
            records = split_records(records, fmt, int(config["split"]["seed"]), float(config["split"]["fraction"]))[1]
        data = (fmt, records[: int(config.get("max_examples", 200))])
    captured_file = inputs / "captured" / "captured.jsonl"
    captured = (
        [json.loads(line) for line in captured_file.read_text().splitlines() if line.strip()]
        if captured_file.is_file()
        else []
    )
    ops_file = inputs / "ops" / "ops.json"
    ops = json.loads(ops_file.read_text()) if ops_file.is_file() else {}
    scorer = Scorer(seed)
    variants = [
        VariantEvaluation(
            variant=v["name"],
            version=v["version"],
            role=v["role"],
            metrics=scorer.variant(
                v["name"],
                inputs / f"model-{v['name']}",
                data,
                captured,
                ops.get(v["name"], []),
                int(config.get("max_new_tokens", 64)),
            ),
        )
        for v in config["variants"]
    ]
    champion = next(v for v in variants if v.role == "champion")
    challenger = next((v for v in variants if v.role == "challenger"), None)
    comparisons = scorer.compare(champion, challenger) if challenger else []
    report = ContinuousEvaluationReport(
        endpoint=config["endpoint"],
        variants=variants,
        comparisons=comparisons,
        verdict=verdict(comparisons) if challenger else None,
    )
    output = root / "output"
    output.mkdir(parents=True, exist_ok=True)
    (output / "report.json").write_text(report.model_dump_json(indent=2))
    (output / "report.md").write_text(markdown(report))
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainforge.evaluation.continuous",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    default_root = Path(os.environ.get("TRAINFORGE_PROCESSING_ROOT", "/opt/ml/processing"))
    parser.add_argument("--processing-root", type=Path, default=default_root)
    args, _ = parser.parse_known_args(argv)
    report = evaluate_endpoint(args.processing_root)
    print(
        json.dumps({"event": "continuous_evaluation", "passed": report.verdict.passed if report.verdict else None}),
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
