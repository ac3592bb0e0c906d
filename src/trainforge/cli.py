"""``trainforge``: the command line. Exit codes: 0 ok, 1 rejected/failed, 2 usage error."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from trainforge.contracts import DatasetReport
from trainforge.errors import SpecInvalid, TrainForgeError, UsageError

console = Console(stderr=True)
out = Console()

EXIT_OK, EXIT_REJECTED, EXIT_USAGE = 0, 1, 2


def _print_report(report: DatasetReport) -> None:
    table = Table(title="Dataset report", show_header=False)
    table.add_row("verdict", "[green]accepted[/]" if report.ok else "[red]REJECTED[/]")
    table.add_row("format", f"{report.format or 'unknown'}{' (detected)' if report.format_detected else ''}")
    table.add_row("records", f"{report.records} read, {report.valid_records} valid ({report.bytes_read:,} bytes)")
    table.add_row("duplicates", f"{report.exact_duplicates} exact, {report.near_duplicates} near")
    if report.pii_counts:
        table.add_row(
            "PII",
            ", ".join(f"{k}: {v}" for k, v in sorted(report.pii_counts.items())) + f" (policy {report.pii_policy})",
        )
    if report.token_stats:
        stats = report.token_stats
        table.add_row(
            "tokens",
            f"{stats.total_tokens:,} total, p95 {stats.p95_tokens}, {stats.truncated_examples} over max_seq_len {stats.max_seq_len}",
        )
    if report.split:
        table.add_row("split", f"{report.split.train_examples} train / {report.split.validation_examples} validation")
    out.print(table)
    for warning in report.warnings:
        out.print(f"[yellow]note:[/] {warning}")
    if report.errors:
        # one line per error, file:line first, so editors and terminals can jump to it
        out.print("[bold]Errors[/] (first of each kind):")
        for issue in report.errors[:30]:
            where = issue.file.removeprefix("file://") + (f":{issue.line}" if issue.line else "")
            field = f" {issue.field}" if issue.field else ""
            out.print(f"  {where}{field}: [red]{issue.code}[/] {issue.message}", soft_wrap=True, highlight=False)
        out.print("counts: " + ", ".join(f"{code}={count}" for code, count in sorted(report.error_counts.items())))


def cmd_validate(args: argparse.Namespace) -> int:
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    from trainforge.data import ValidationOptions, validate_dataset
    from trainforge.data.report import write_report
    from trainforge.spec import parse_spec
    from trainforge.store import open_store, to_uri

    uri = to_uri(args.path)
    store = open_store(uri)
    options = ValidationOptions()
    if args.spec:
        spec = parse_spec(Path(args.spec).read_bytes(), args.spec)
        options = ValidationOptions.from_spec(spec)
    if args.format:
        options = ValidationOptions(**{**options.__dict__, "format": args.format})
    objects = list(store.list(uri))
    if not objects:
        raise UsageError(f"{args.path}: no such file or folder")
    total = sum(info.size for info in objects)
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
        disable=args.json or total < 50_000_000,
    ) as progress:
        task = progress.add_task("validating", total=total)
        done: dict[str, int] = {"base": 0, "last": 0}

        def advance(file_bytes: int) -> None:
            if file_bytes < done["last"]:
                done["base"] += done["last"]
            done["last"] = file_bytes
            progress.update(task, completed=done["base"] + file_bytes)

        report = validate_dataset([uri], store, options, progress=advance)
    if args.report:
        report = write_report(report, open_store(to_uri(args.report)), to_uri(args.report))
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        _print_report(report)
    return EXIT_OK if report.ok else EXIT_REJECTED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trainforge", description="Turn your own data into your own model, in your own account."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    validate = sub.add_parser(
        "validate",
        help="validate a dataset file or folder (path, file:// or s3:// URI)",
        description="Validate training data: structure, format, duplicates, PII, token counts. Exit 0 when accepted, 1 when rejected, 2 on usage errors.",
    )
    validate.add_argument("path", help="a file or folder, or a file:// / s3:// URI")
    validate.add_argument("--spec", help="job spec whose data settings (format, limits, pii policy, split) apply")
    validate.add_argument(
        "--format", choices=["auto", "chat", "prompt_completion", "bedrock_conversation", "text", "preference"]
    )
    validate.add_argument("--json", action="store_true", help="print the DatasetReport as JSON")
    validate.add_argument("--report", help="also write the report (JSON + Markdown twin) to this path or URI")
    validate.set_defaults(handler=cmd_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return EXIT_USAGE if exc.code not in (0, None) else EXIT_OK
    handler: Callable[[argparse.Namespace], int] = args.handler
    try:
        return handler(args)
    except (UsageError, SpecInvalid, FileNotFoundError) as exc:
        console.print(f"[red]error:[/] {exc}")
        return EXIT_USAGE
    except TrainForgeError as exc:
        console.print(f"[red]{type(exc).__name__}:[/] {exc}")
        if exc.hint:
            console.print(f"hint: {exc.hint}")
        return EXIT_REJECTED


if __name__ == "__main__":
    sys.exit(main())
