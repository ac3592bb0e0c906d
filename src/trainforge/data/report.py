"""Rendering and storing a DatasetReport: JSON for machines, Markdown for the person who uploaded the data."""

from __future__ import annotations

from trainforge.contracts import DatasetReport
from trainforge.store import ObjectStore


def to_markdown(report: DatasetReport) -> str:
    verdict = "accepted" if report.ok else "REJECTED"
    lines = [
        f"# Dataset report: {verdict}",
        "",
        f"- files: {', '.join(report.files) or '(none)'}",
        f"- format: {report.format or 'unknown'}" + (" (detected)" if report.format_detected else ""),
        f"- records: {report.records} read, {report.valid_records} valid, {report.bytes_read} bytes",
        f"- duplicates: {report.exact_duplicates} exact, {report.near_duplicates} near",
    ]
    if report.split:
        lines.append(
            f"- split (seed {report.split.seed}): {report.split.train_examples} train, {report.split.validation_examples} validation"
        )
    if report.token_stats:
        stats = report.token_stats
        lines.append(
            f"- tokens ({stats.tokenizer}): {stats.total_tokens} total, mean {stats.mean_tokens}, p95 {stats.p95_tokens}, "
            f"max {stats.max_tokens}; {stats.truncated_examples} examples longer than max_seq_len={stats.max_seq_len}"
        )
    if report.pii_counts:
        found = ", ".join(f"{kind}: {count}" for kind, count in sorted(report.pii_counts.items()))
        lines.append(f"- PII/secrets (policy {report.pii_policy}): {found}")
    for warning in report.warnings:
        lines.append(f"- note: {warning}")
    if report.errors:
        lines += ["", "## Errors", "", "| code | count |", "|---|---|"]
        lines += [f"| {code} | {count} |" for code, count in sorted(report.error_counts.items())]
        lines += ["", "First occurrences:", ""]
        lines += [f"- `{issue.render()}`" for issue in report.errors]
    if report.duplicate_examples:
        lines += ["", "## Duplicates", ""] + [f"- `{issue.render()}`" for issue in report.duplicate_examples]
    if report.pii_findings:
        lines += ["", "## PII findings", ""]
        lines += [f"- `{f.file}:{f.line} {f.field}`: {f.kind} ({f.action})" for f in report.pii_findings]
    return "\n".join(lines) + "\n"


def write_report(report: DatasetReport, store: ObjectStore, json_uri: str) -> DatasetReport:
    """Store the report as ``json_uri`` and a Markdown twin beside it; returns it with report_uri set."""
    stored = report.model_copy(update={"report_uri": json_uri})
    store.write_bytes(json_uri, stored.model_dump_json(indent=2).encode(), "application/json")
    store.write_bytes(json_uri.removesuffix(".json") + ".md", to_markdown(stored).encode(), "text/markdown")
    return stored
