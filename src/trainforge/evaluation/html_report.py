"""The evaluation report as one self-contained HTML page (inline SVG, no scripts, no network): it opens
from disk, from an S3 presigned URL or as an MLflow artifact the same way."""

from __future__ import annotations

from html import escape
from typing import Any

from trainforge.contracts import EvaluationReport, MetricComparison, PlannedActual, TrialSummary, objective_label

_STYLE = """body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;color:#222}
table{border-collapse:collapse;width:100%}td,th{border:1px solid #ddd;padding:6px;text-align:left;vertical-align:top}
.pass{color:#176b1c}.fail{color:#b3261e}h1 small{font-weight:normal;color:#666}svg{background:#fafafa}"""


def _polyline(points: list[tuple[float, float]], x_max: float, y_min: float, y_max: float, colour: str) -> str:
    if not points:
        return ""
    span = (y_max - y_min) or 1.0
    coords = " ".join(
        f"{40 + 540 * x / max(x_max, 1):.1f},{10 + 180 * (1 - (y - y_min) / span):.1f}" for x, y in points
    )
    return f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{coords}"/>'


def loss_chart(history: list[dict[str, Any]]) -> str:
    train = [(h["step"], h["loss"]) for h in history if "loss" in h]
    evals = [(h["step"], h["eval_loss"]) for h in history if "eval_loss" in h]
    if not train:
        return "<p>No training metrics.</p>"
    values = [y for _, y in train + evals]
    low, high = min(values), max(values)
    x_max = max(x for x, _ in train)
    return (
        f'<svg width="600" height="220" role="img" aria-label="loss curves">'
        f'<text x="5" y="15" font-size="11">{high:.2f}</text><text x="5" y="190" font-size="11">{low:.2f}</text>'
        f"{_polyline(train, x_max, low, high, '#1f77b4')}{_polyline(evals, x_max, low, high, '#d62728')}"
        f'<text x="420" y="210" font-size="11" fill="#1f77b4">train loss</text><text x="500" y="210" font-size="11" fill="#d62728">eval loss</text>'
        f'<text x="40" y="210" font-size="11">step 0 .. {x_max}</text></svg>'
    )


def bars(metric: MetricComparison) -> str:
    top = max(metric.base, metric.tuned) or 1.0
    parts = []
    for index, (label, value) in enumerate((("base", metric.base), ("tuned", metric.tuned))):
        width = 400 * value / top
        parts.append(
            f'<rect x="60" y="{10 + 30 * index}" width="{width:.1f}" height="20" fill="{"#999" if index == 0 else "#2a7"}"/>'
            f'<text x="5" y="{25 + 30 * index}" font-size="12">{label}</text>'
            f'<text x="{65 + width:.1f}" y="{25 + 30 * index}" font-size="12">{value:.3f}</text>'
        )
    return f'<svg width="560" height="70" role="img" aria-label="{escape(metric.name)}">{"".join(parts)}</svg>'


def planned_table(planned: list[PlannedActual]) -> str:
    """The run's plan (plan.json) beside what training reported: time, tokens, cost."""
    if not planned:
        return ""
    rows = "".join(
        f"<tr><td>{escape(row.figure)}</td><td>{escape(row.planned)}</td><td>{escape(row.actual)}</td></tr>"
        for row in planned
    )
    return f"<h2>Planned vs actual</h2><table><tr><th></th><th>planned</th><th>actual</th></tr>{rows}</table>"


def trials_chart(trials: list[TrialSummary]) -> str:
    """The objective (``TrialSummary.metric``: best validation loss, or 1 - exact match) of each trial in
    order: feasible green, infeasible red, the best ringed; pruned and failed trials have no objective and no
    point."""
    scored = [t for t in trials if t.objective is not None]
    if not scored:
        return ""
    low, high = (
        min(t.objective for t in scored if t.objective is not None),
        max(t.objective for t in scored if t.objective is not None),
    )
    span, last = (high - low) or 1.0, max(t.number for t in trials) or 1
    points = []
    for trial in scored:
        assert trial.objective is not None
        x, y = 40 + 540 * trial.number / last, 10 + 180 * (1 - (trial.objective - low) / span)
        colour = "#2a7" if trial.state == "complete" else "#b3261e"
        ring = f'<circle cx="{x:.1f}" cy="{y:.1f}" r="9" fill="none" stroke="#222"/>' if trial.best else ""
        points.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{colour}"/>{ring}')
    return (
        f'<svg width="600" height="220" role="img" aria-label="objective per trial">'
        f'<text x="5" y="15" font-size="11">{high:.3f}</text><text x="5" y="190" font-size="11">{low:.3f}</text>'
        f'{"".join(points)}<text x="40" y="210" font-size="11">trial 0 .. {last} (green feasible, red over the '
        f"forgetting budget, ringed: chosen)</text></svg>"
    )


def trials_table(trials: list[TrialSummary]) -> str:
    """The tuning job's trials: settings, objective, forgetting, state; and the chosen trial's settings."""
    if not trials:
        return ""
    names = sorted({name for trial in trials for name in trial.params})

    def cell(value: object) -> str:
        return f"{value:.4g}" if isinstance(value, float) else escape(str(value))

    chosen_row = ' class="pass"'
    rows = "".join(
        f"<tr{chosen_row if t.best else ''}><td>{t.number}</td><td>{escape(t.state)}</td>"
        f"<td>{'-' if t.objective is None else f'{t.objective:.4f}'}</td>"
        f"<td>{'-' if t.forgetting is None else f'{t.forgetting:+.2%}'}</td>"
        + "".join(f"<td>{cell(t.params.get(name, '-'))}</td>" for name in names)
        + "</tr>"
        for t in trials
    )
    best = next((t for t in trials if t.best), None)
    chosen = (
        "<p>Chosen: trial "
        + f"{best.number}: "
        + ", ".join(f"<code>{escape(k)}={cell(v)}</code>" for k, v in sorted(best.params.items()))
        + "</p>"
        if best
        else ""
    )
    head = "".join(f"<th>{escape(name)}</th>" for name in names)
    return (
        f"<h2>Tuning trials</h2>{chosen}{trials_chart(trials)}<table><tr><th>trial</th><th>state</th>"
        f"<th>objective ({escape(objective_label(trials))})</th><th>forgetting</th>{head}</tr>{rows}</table>"
    )


def render(report: EvaluationReport, history: list[dict[str, Any]], planned: list[PlannedActual] | None = None) -> str:
    verdict = report.verdict
    status = "no verdict" if verdict is None else ("PASSED" if verdict.passed else "FAILED")
    css = "" if verdict is None else ("pass" if verdict.passed else "fail")
    rows = []
    for metric in [*report.metrics, *(report.probes or ([report.forgetting] if report.forgetting else []))]:
        rows.append(
            f"<tr><td>{escape(metric.name)}</td><td>{metric.base:.4f}</td><td>{metric.tuned:.4f}</td>"
            f"<td>{metric.delta:+.4f}</td><td>[{metric.ci_low:+.4f}, {metric.ci_high:+.4f}]</td><td>{bars(metric)}</td></tr>"
        )
    samples = "".join(
        f"<tr><td>{escape(s.prompt)}</td><td>{escape(s.reference or '')}</td><td>{escape(s.base)}</td><td>{escape(s.tuned)}</td></tr>"
        for s in report.samples
    )
    reasons = "".join(f"<li>{escape(reason)}</li>" for reason in (verdict.reasons if verdict else []))
    lm_eval = "".join(f"<tr><td>{escape(k)}</td><td>{v:.4f}</td></tr>" for k, v in report.lm_eval.items())
    return f"""<!doctype html><html><head><meta charset="utf-8"><title>TrainForge evaluation {escape(report.run_id)}</title>
<style>{_STYLE}</style></head><body>
<h1>Evaluation <small>run {escape(report.run_id)}</small></h1>
<p>Base <code>{escape(report.base_model)}</code> vs tuned <code>{escape(report.tuned_model_uri)}</code> on {report.examples} held-out examples.</p>
<h2 class="{css}">Gate: {status}</h2><ul>{reasons}</ul>
<h2>Training</h2>{loss_chart(history)}
{planned_table(planned or [])}
{trials_table(report.trials)}
<h2>Base vs tuned</h2><p>Delta is an improvement (relative for perplexities, absolute for scores); intervals are paired bootstrap 95%.</p>
<table><tr><th>metric</th><th>base</th><th>tuned</th><th>delta</th><th>95% CI</th><th></th></tr>{"".join(rows)}</table>
{f"<h2>lm-eval</h2><table>{lm_eval}</table>" if lm_eval else ""}
<h2>Sample generations</h2>
<table><tr><th>prompt</th><th>reference</th><th>base</th><th>tuned</th></tr>{samples}</table>
</body></html>"""
