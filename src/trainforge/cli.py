"""``trainforge``: the command line. Exit codes: 0 ok, 1 rejected/failed, 2 usage error."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, get_args

from rich.console import Console
from rich.table import Table

from trainforge.contracts import DatasetReport
from trainforge.errors import SpecInvalid, TrainForgeError, UsageError
from trainforge.settings import Settings
from trainforge.spec import FormatChoice

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
    from trainforge.data import ValidationOptions, validate_dataset
    from trainforge.data.report import write_report
    from trainforge.pipeline.progress import ValidationBar
    from trainforge.spec import parse_spec
    from trainforge.store import open_store, to_uri

    uri = to_uri(args.path)
    store = open_store(uri)
    options = ValidationOptions()
    if args.spec:
        spec = parse_spec(Path(args.spec).read_bytes(), args.spec)
        options = ValidationOptions.from_spec(spec)
    if args.format:
        options = replace(options, format=args.format)
    objects = list(store.list(uri))
    if not objects:
        raise UsageError(f"{args.path}: no such file or folder")
    total = sum(info.size for info in objects)
    with ValidationBar(console, transient=True, disable=args.json or total < 50_000_000) as bar:
        report = validate_dataset([uri], store, options, progress=bar)
    if args.report:
        report = write_report(report, open_store(to_uri(args.report)), to_uri(args.report))
    if args.json:
        print(report.model_dump_json(indent=2))
    else:
        _print_report(report)
    return EXIT_OK if report.ok else EXIT_REJECTED


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {"workspace": Path(args.workspace)} if getattr(args, "workspace", None) else {}
    return Settings(**overrides)  # type: ignore[arg-type]


def _print_outcome(outcome: Any) -> int:
    summary = outcome.summary()
    table = Table(title=f"Run {outcome.run_id}: {outcome.status}", show_header=False)
    if summary.gate:
        verdict = "[green]passed[/]" if summary.gate.passed else "[red]failed[/]"
        table.add_row("gate", verdict + "\n" + "\n".join(summary.gate.reasons))
    for metric in summary.metrics + ([summary.forgetting] if summary.forgetting else []):
        table.add_row(
            metric.name,
            f"base {metric.base:.4f} -> tuned {metric.tuned:.4f} (delta {metric.delta:+.4f}, 95% CI [{metric.ci_low:+.4f}, {metric.ci_high:+.4f}])",
        )
    if outcome.version:
        table.add_row(
            "model version", f"{outcome.version.name} v{outcome.version.version} ({outcome.version.approval})"
        )
    if outcome.deployment:
        table.add_row(
            "endpoint",
            f"{outcome.deployment.url or outcome.deployment.endpoint_name or ''} {outcome.deployment.status}",
        )
    if outcome.failure:
        table.add_row(
            "failure", f"[red]{outcome.failure.error}[/] at {outcome.failure.state}: {outcome.failure.cause[:600]}"
        )
        table.add_row("hint", outcome.failure.hint)
    for row in summary.planned:
        table.add_row(f"{row.figure}, planned / actual", f"{row.planned} / {row.actual}")
    table.add_row("wall time", f"{outcome.wall_seconds:.0f} s")
    out.print(table)
    out.print(
        f"reports: {outcome.run_dir}/dataset-report.md  {outcome.run_dir}/evaluation/report.html",
        soft_wrap=True,
        highlight=False,
    )
    return EXIT_OK if outcome.status == "succeeded" or outcome.reused else EXIT_REJECTED


def cmd_run(args: argparse.Namespace) -> int:
    from trainforge.pipeline.local_runner import LocalRunner

    settings = _settings(args)
    spec = Path(args.spec)
    if not spec.is_file():
        raise UsageError(f"{spec}: no such job spec")
    if args.data_root:
        settings = settings.model_copy(update={"data_uri": Path(args.data_root).resolve().as_uri()})
    elif spec.resolve().parent.name == "jobs":  # jobs/NAME.yaml sits in the data root beside datasets/
        settings = settings.model_copy(update={"data_uri": spec.resolve().parent.parent.as_uri()})
    outcome = LocalRunner(settings, console=console, port=args.port).run(spec, force=args.force)
    return _print_outcome(outcome)


def cmd_quickstart(args: argparse.Namespace) -> int:
    from trainforge.pipeline.local_runner import LocalRunner
    from trainforge.quickstart import client_examples, prepare_quickstart

    settings = _settings(args)
    spec = prepare_quickstart(settings.workspace.resolve() / "data")
    console.print(f"quickstart: job spec {spec}, data {spec.parent.parent / 'datasets'}")
    outcome = LocalRunner(settings, console=console, port=args.port).run(spec, force=True)
    code = _print_outcome(outcome)
    if outcome.deployment and outcome.deployment.url:
        out.print("\nThe tuned model is being served. Try it:\n")
        out.print(
            client_examples(outcome.deployment.url, outcome.deployment.endpoint_name or "quickstart"),
            highlight=False,
            soft_wrap=True,
        )
        out.print(f"\nStop the server with: trainforge stop {outcome.deployment.endpoint_name}")
    return code


def cmd_watch(args: argparse.Namespace) -> int:
    from trainforge.pipeline.watch import watch

    settings = Settings(workspace=Path(args.workspace))
    return watch(settings, interval=args.interval, once=args.once, console=console)


def _print_validation_status(status: Any) -> None:
    from rich.filesize import decimal

    seen = status.progress
    share = f" ({seen.bytes / seen.total_bytes:.0%})" if seen.total_bytes else ""
    table = Table(title=f"Run {status.run_id}: validation", show_header=False)
    table.add_row("shards", f"{status.shards_done} of {status.shards} written")
    table.add_row("records", f"{seen.records:,} validated")
    table.add_row("bytes", f"{decimal(seen.bytes)} of {decimal(seen.total_bytes)}{share}")
    table.add_row("report", status.report_uri or "not merged yet")
    out.print(table)


def cmd_runs(args: argparse.Namespace) -> int:
    import json

    if args.action == "status":
        from trainforge.pipeline.progress import validation_status
        from trainforge.store import to_uri

        if not args.run_id:
            raise UsageError("runs status needs a RUN_ID")
        artifacts = to_uri(args.artifacts) if args.artifacts else _settings(args).resolved_artifacts_uri()
        _print_validation_status(validation_status(args.run_id, artifacts))
        return EXIT_OK
    runs_dir = _settings(args).workspace.resolve() / "artifacts" / "runs"
    if args.action == "show":
        if not args.run_id:
            raise UsageError("runs show needs a RUN_ID (see trainforge runs list)")
        outcome = runs_dir / args.run_id / "outcome.json"
        if not outcome.is_file():
            raise UsageError(f"no finished run {args.run_id} in {runs_dir}")
        out.print_json(outcome.read_text())
        _print_trials(runs_dir / args.run_id / "tune" / "trials.json")
        out.print(f"files: {runs_dir / args.run_id}")
        return EXIT_OK
    table = Table(title=f"Runs in {runs_dir}")
    for column in ("run id", "status", "gate", "version", "wall s"):
        table.add_column(column)
    for path in sorted(runs_dir.glob("*/outcome.json"), key=lambda p: p.stat().st_mtime):
        summary = json.loads(path.read_text())
        gate = summary.get("gate") or {}
        version = summary.get("model_version") or {}
        table.add_row(
            summary["run_id"],
            summary["status"],
            "-" if gate.get("passed") is None else ("passed" if gate["passed"] else "failed"),
            f"v{version['version']} {version['approval']}" if version else "-",
            str(summary.get("wall_seconds", "")),
        )
    out.print(table)
    return EXIT_OK


def _print_trials(trials_file: Path) -> None:
    """A tuned run's trials (``tune/trials.json``, either tuner's): settings, objective, forgetting, state."""
    if not trials_file.is_file():
        return
    import json

    from trainforge.contracts import TrialSummary, objective_label

    trials = json.loads(trials_file.read_text())
    label = objective_label([TrialSummary.model_validate(trial) for trial in trials])
    table = Table(title=f"Tuning trials (objective: {label}; * chosen)")
    for column in ("trial", "state", "objective", "forgetting", "settings"):
        table.add_column(column)
    for trial in trials:
        objective, forgetting = trial.get("objective"), trial.get("forgetting")
        table.add_row(
            f"{trial['number']}{' *' if trial.get('best') else ''}",
            trial["state"],
            "-" if objective is None else f"{objective:.4f}",
            "-" if forgetting is None else f"{forgetting:+.2%}",
            ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in trial["params"].items()),
        )
    out.print(table)


def cmd_models(args: argparse.Namespace) -> int:
    from trainforge.registry.mlflow import MLflowRegistry

    settings = _settings(args)
    registry = MLflowRegistry(settings.resolved_mlflow_uri())
    table = Table(title="Registered models (MLflow)")
    for column in ("model", "version", "approval", "champion", "run id", "source"):
        table.add_column(column)
    for name in registry.model_names():
        champion = registry.champion(name)
        for version in registry.versions(name):
            table.add_row(
                name,
                version.version,
                version.approval,
                "*" if champion and champion.version == version.version else "",
                version.run_id,
                version.model_uri,
            )
    out.print(table)
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    from trainforge.serving.server import resolve_model, serve

    api_key = args.api_key or os.environ.get("TRAINFORGE_API_KEY")
    if args.endpoint:
        from trainforge.data.pii import find_pii, redact
        from trainforge.serving.variants import serve_endpoint

        serve_endpoint(
            Path(args.endpoint), args.host, args.port, api_key, redact=lambda text: redact(text, find_pii(text))
        )
        return EXIT_OK
    if not args.model:
        raise UsageError("serve needs a MODEL (a folder or models:/NAME@ALIAS) or --endpoint RECORD")
    model_dir, name = resolve_model(args.model, _settings(args).resolved_mlflow_uri())
    serve(model_dir, args.name or name, host=args.host, port=args.port, api_key=api_key)
    return EXIT_OK


def _stack_function(prefix: str, function: str, payload: dict[str, Any]) -> dict[str, Any]:
    """Invoke one of the stack's named functions (PREFIX-FUNCTION) with the caller's credentials."""
    import json

    import boto3

    answer = boto3.client("lambda").invoke(FunctionName=f"{prefix}-{function}", Payload=json.dumps(payload).encode())
    body: dict[str, Any] = json.loads(answer["Payload"].read())
    if "FunctionError" in answer:
        raise TrainForgeError(f"{body.get('errorType', 'Error')}: {body.get('errorMessage', body)}")
    return body


def _print_endpoint(summary: dict[str, Any]) -> None:
    table = Table(title=f"Endpoint {summary['endpoint']}: {summary['status']}", show_header=False)
    table.add_row("champion", str(summary.get("champion") or "-"))
    table.add_row("challenger", str(summary.get("challenger") or "-"))
    table.add_row("traffic", ", ".join(f"{name} {weight}" for name, weight in summary["traffic"].items()))
    if summary.get("rolled_back"):
        table.add_row("rolled back", str(summary["rolled_back"]))
    out.print(table)


def cmd_rollout(args: argparse.Namespace) -> int:
    """promote / rollback, in AWS through the stack's rollout function, locally in this process."""
    if args.aws:
        _print_endpoint(_stack_function(args.aws, "rollout", {"action": args.command, "endpoint": args.name}))
        return EXIT_OK
    from trainforge.pipeline.local_runner import LocalRunner
    from trainforge.pipeline.rollout import MLflowAliases, endpoint_summary, promote_endpoint, rollback_endpoint
    from trainforge.serving.deployers.local import LocalDeployer

    runner = LocalRunner(_settings(args))
    deployer, aliases = LocalDeployer(runner.settings.workspace.resolve()), MLflowAliases(runner._registry())
    if args.command == "promote":
        record, status = promote_endpoint(args.name, deployer, aliases)
        _print_endpoint(endpoint_summary(record, status))
    else:
        record, status, out_variant = rollback_endpoint(args.name, deployer, aliases)
        _print_endpoint(endpoint_summary(record, status, out_variant))
    return EXIT_OK


def cmd_capture(args: argparse.Namespace) -> int:
    import json

    from trainforge.pipeline.continuous import captures_uri
    from trainforge.serving.capture import as_chat_records, read_captures
    from trainforge.store import open_store

    workspace = None if args.artifacts else _settings(args).workspace
    uri = captures_uri(args.name, artifacts_uri=args.artifacts, workspace=workspace)
    records = as_chat_records(read_captures(open_store(uri), uri))
    text = "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
        out.print(f"{len(records)} records -> {args.out}", highlight=False)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def cmd_evaluate_endpoint(args: argparse.Namespace) -> int:
    """Continuous evaluation of a local endpoint: its versions re-scored on the newest data and the captured
    traffic, with their serving figures; the report in MLflow; optionally the challenger rolled back."""
    from trainforge.pipeline.continuous import evaluate_local_endpoint, record_in_mlflow
    from trainforge.pipeline.local_runner import LocalRunner
    from trainforge.pipeline.rollout import MLflowAliases, endpoint_summary, rollback_endpoint
    from trainforge.serving.deployers.local import LocalDeployer

    runner = LocalRunner(_settings(args))
    workspace = runner.settings.workspace.resolve()
    report = evaluate_local_endpoint(
        args.name, workspace, runner.platform.artifacts_uri, max_examples=args.max_examples
    )
    record_in_mlflow(report, runner._registry())
    for variant in report.variants:
        table = Table(title=f"{variant.variant} (version {variant.version}, {variant.role})")
        for column in ("figure", "value", "95% CI", "n"):
            table.add_column(column)
        for e in variant.metrics:
            table.add_row(e.name, f"{e.value:.4g}", f"[{e.ci_low:.4g}, {e.ci_high:.4g}]", str(e.n))
        out.print(table)
    if report.verdict is not None:
        out.print(
            ("[green]passed[/]: " if report.verdict.passed else "[red]FAILED[/]: ") + "; ".join(report.verdict.reasons)
        )
    out.print(f"report: {report.report_uri}", soft_wrap=True, highlight=False)
    if report.verdict is not None and not report.verdict.passed:
        if args.rollback_on_fail:
            deployer, aliases = LocalDeployer(workspace), MLflowAliases(runner._registry())
            record, status, out_variant = rollback_endpoint(args.name, deployer, aliases)
            _print_endpoint(endpoint_summary(record, status, out_variant))
        return EXIT_REJECTED
    return EXIT_OK


def cmd_schedules(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from trainforge.pipeline.schedules import LocalSchedules, aws_schedules

    now = datetime.now(UTC)
    if args.aws:
        rows = aws_schedules(f"{args.aws}-retrain", now=now)
    else:
        rows = LocalSchedules(_settings(args).workspace.resolve() / "schedules.json").rows(now)
    table = Table(title="Schedules (UTC)")
    for column in ("job", "schedule", "expression", "next run", "state"):
        table.add_column(column)
    for row in rows:
        fires = row.next_fire.strftime("%Y-%m-%d %H:%M") if row.next_fire else "never"
        table.add_row(row.job, row.name, row.expression, fires, row.state)
    out.print(table)
    return EXIT_OK


def cmd_stop(args: argparse.Namespace) -> int:
    from trainforge.serving.deployers.local import LocalDeployer

    deployer = LocalDeployer(_settings(args).workspace.resolve())
    if deployer.record(args.name) is None:
        raise UsageError(f"no local deployment named {args.name}")
    deployer.stop(args.name)
    out.print(f"stopped {args.name}")
    return EXIT_OK


def _print_plan(plan: Any) -> None:
    """``trainforge plan``'s tables: the work, each instance type side by side, deployability, quotas."""
    from trainforge.planning.cost import dollars
    from trainforge.planning.duration import span

    work = plan.work
    out.print(
        f"[bold]Plan[/] {plan.job_name}: {plan.method} of {plan.base_model}; {work.examples:,} examples, "
        f"{work.tokens:,} tokens ({work.tokenizer}) -> {work.sequences:,} sequences "
        f"({work.padding_fraction:.1%} padding), {work.steps:,} step{'s' if work.steps != 1 else ''} of "
        f"{work.tokens_per_step:,} tokens, "
        f"{work.epochs:g} epochs; evaluation {work.evaluation_examples} examples",
        highlight=False,
    )
    table = Table(title=f"Instance types ({plan.region}, prices as of {plan.prices_as_of})")
    table.add_column("instance type", no_wrap=True)
    for column in ("devices", "memory", "fits", "training", "total", "cost"):
        table.add_column(column)
    for option in plan.instances:
        memory, time, cost = option.memory, option.time, option.cost
        fits = {"fits": "[green]yes[/]", "adjusted": "[yellow]adjusted[/]", "unknown": "?"}.get(
            option.verdict, "[red]no[/]"
        )
        if memory is not None and memory.adjustments:
            fits += "\n" + ", ".join(f"{name} {value}" for name, value in memory.adjustments.items())
        if memory is not None and memory.change:
            fits += f"\nfits with {memory.change}"
        cost_text, start = "-", time.process_start_seconds if time is not None else 0.0
        if cost is not None:
            cost_text = dollars(cost.training_usd_low, cost.training_usd_high)
            if cost.total_usd_high is not None and cost.region != "local":
                cost_text += f" (${cost.total_usd_high:.2f})"
        table.add_row(
            option.instance_type + (" *" if option.requested else ""),
            option.accelerator.replace("NVIDIA ", "").replace("AWS ", ""),
            "-" if memory is None else f"{memory.requested_bytes / 2**30:.1f}/{memory.budget_bytes / 2**30:.1f} GiB",
            fits,
            "-" if time is None else span(start + time.training_seconds_low, start + time.training_seconds_high),
            "-" if time is None else span(time.total_seconds_low, time.total_seconds_high),
            cost_text,
        )
    out.print(table)
    out.print(
        "* requested; memory: per device (process on a CPU), the estimate at the spec's settings / the budget; "
        "training: the training process; total: with evaluation and job start-up; cost: training (the whole run)"
    )
    if plan.smallest_fitting:
        out.print(f"cheapest type that fits: {plan.smallest_fitting}", highlight=False)
    if plan.trainium_vs_gpu:
        out.print(f"Trainium vs GPU: {plan.trainium_vs_gpu}", highlight=False)
    deployment = plan.deployment
    verdict = "[green]yes[/]" if deployment.ok else "[red]no[/]"
    out.print(f"will it deploy ({deployment.target})? {verdict}")
    for check in deployment.checks:
        out.print(f"  {'ok' if check.ok else 'NO'} {check.name}: {check.detail}", highlight=False)
    for hint in plan.quotas:
        value = "" if hint.value is None else f" = {hint.value:g}"
        out.print(f"quota '{hint.name}'{value}: needs {hint.needed} ({hint.status})", highlight=False)
    for note in plan.notes:
        out.print(f"[yellow]note:[/] {note}", highlight=False)
    for refusal in plan.refusals:
        out.print(f"[red]refused:[/] {refusal}", highlight=False)


def cmd_plan(args: argparse.Namespace) -> int:
    from trainforge.pipeline.plan_step import plan_job
    from trainforge.planning.prices import load_prices

    spec = Path(args.spec)
    if not spec.is_file():
        raise UsageError(f"{spec}: no such job spec")
    settings = _settings(args)
    data_root = Path(args.data_root) if args.data_root else spec.resolve().parent.parent
    settings = settings.model_copy(update={"data_uri": data_root.resolve().as_uri()})
    prices = load_prices(Path(args.prices).read_bytes(), args.prices) if args.prices else None
    plan = plan_job(
        spec, settings, instance_types=args.instance_type, prices=prices, region=args.region, here=args.local
    )
    if args.json:
        print(plan.model_dump_json(indent=2))
    else:
        _print_plan(plan)
    return EXIT_REJECTED if plan.refusals else EXIT_OK


def cmd_convert_whisper(args: argparse.Namespace) -> int:
    from trainforge.training.ct2_whisper import convert

    source = Path(args.source)
    if not source.is_dir():
        raise UsageError(f"{source}: not a folder (a CTranslate2 Whisper: model.bin, config.json, tokenizer.json)")
    target = convert(source, Path(args.target), [Path(p) for p in args.part] or None)
    out.print(f"HF Whisper folder: {target} (base_model: {target.resolve().as_uri()})")
    return EXIT_OK


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
    validate.add_argument("--format", choices=get_args(FormatChoice))
    validate.add_argument("--json", action="store_true", help="print the DatasetReport as JSON")
    validate.add_argument("--report", help="also write the report (JSON + Markdown twin) to this path or URI")
    validate.set_defaults(handler=cmd_validate)

    workspace = argparse.ArgumentParser(add_help=False)
    workspace.add_argument(
        "--workspace", help="local workspace folder (default ./.trainforge or $TRAINFORGE_WORKSPACE)"
    )

    run = sub.add_parser(
        "run",
        parents=[workspace],
        help="run a job spec end to end on this machine",
        description="Validate, train, evaluate against the base model, register (MLflow) and serve, like the AWS state machine. "
        "Data paths in the spec are keys under the data root: the folder holding jobs/ (or --data-root).",
    )
    run.add_argument("spec", help="the job spec, e.g. jobs/support.yaml")
    run.add_argument("--data-root", help="folder that data paths in the spec are relative to")
    run.add_argument("--port", type=int, default=8000, help="port for the local endpoint (default 8000, or a free one)")
    run.add_argument("--force", action="store_true", help="run again even if this spec and data already ran")
    run.set_defaults(handler=cmd_run)

    quick = sub.add_parser(
        "quickstart",
        parents=[workspace],
        help="train, evaluate and serve a real model on real data (~10 min on 2 cores)",
        description="Fine-tune SmolLM2-135M-Instruct on real chitchat conversations, evaluate it against the base, "
        "register it in MLflow and serve it with an OpenAI-compatible API.",
    )
    quick.add_argument("--port", type=int, default=8000)
    quick.set_defaults(handler=cmd_quickstart)

    watch = sub.add_parser(
        "watch",
        help="run jobs when specs or data are dropped into WORKSPACE/data",
        description="Poll WORKSPACE/data/jobs and WORKSPACE/data/datasets: a new or changed spec starts a run; new data "
        "starts runs of the jobs with trigger.on_new_data that read it. Idempotent, like the S3 event path.",
    )
    watch.add_argument("workspace", help="the workspace folder")
    watch.add_argument("--interval", type=float, default=5.0, help="seconds between scans")
    watch.add_argument("--once", action="store_true", help="scan once and exit")
    watch.set_defaults(handler=cmd_watch)

    runs = sub.add_parser(
        "runs",
        parents=[workspace],
        help="list runs, show one, or how far its validation has got",
        description="List local runs, or show one run's outcome. `runs status RUN_ID` shows how far the run's "
        "sharded validation has got (shards, records and bytes validated), read from its artifacts: in AWS "
        "pass --artifacts s3://BUCKET (the stack's artifacts bucket).",
    )
    runs.add_argument("action", choices=["list", "show", "status"])
    runs.add_argument("run_id", nargs="?")
    runs.add_argument(
        "--artifacts",
        help="where the run's artifacts live (s3://BUCKET; default $TRAINFORGE_ARTIFACTS_URI, else the workspace's)",
    )
    runs.set_defaults(handler=cmd_runs)

    models = sub.add_parser(
        "models",
        parents=[workspace],
        help="list registered models",
        description="List model versions in the local MLflow registry.",
    )
    models.add_argument("action", choices=["list"])
    models.set_defaults(handler=cmd_models)

    serve = sub.add_parser(
        "serve",
        parents=[workspace],
        help="serve a model folder or models:/NAME@champion",
        description="Serve a model with the SageMaker routes and an OpenAI-compatible API.",
    )
    serve.add_argument(
        "model",
        nargs="?",
        help="a model folder, or models:/NAME@ALIAS or models:/NAME/VERSION from the MLflow registry",
    )
    serve.add_argument(
        "--endpoint",
        help="serve every variant of an endpoint record (deployments/NAME.json): weights, shadows, capture",
    )
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--name", help="the model name clients use (default: the folder or registered name)")
    serve.add_argument("--api-key", help="require Authorization: Bearer KEY (or set TRAINFORGE_API_KEY)")
    serve.set_defaults(handler=cmd_serve)

    stop = sub.add_parser(
        "stop",
        parents=[workspace],
        help="stop a local endpoint",
        description="Stop the local model server of a deployment.",
    )
    stop.add_argument("name")
    stop.set_defaults(handler=cmd_stop)

    aws = argparse.ArgumentParser(add_help=False)
    aws.add_argument("--aws", metavar="PREFIX", help="the AWS installation with this stack prefix (default: local)")
    for command, text in (
        ("promote", "the challenger (rollout ab or shadow) takes all traffic and becomes the registry's champion"),
        ("rollback", "take the newest version out: the challenger, or else the champion for the previous one"),
    ):
        action = sub.add_parser(
            command, parents=[workspace, aws], help=text, description=text[0].upper() + text[1:] + "."
        )
        action.add_argument("name", help="the endpoint (the job's name)")
        action.set_defaults(handler=cmd_rollout)

    schedules = sub.add_parser(
        "schedules",
        parents=[workspace, aws],
        help="list the jobs' retraining schedules and when each runs next",
        description="The schedules the specs' `schedule:` fields keep (EventBridge Scheduler in AWS, "
        "`trainforge watch` locally) and their next fire times.",
    )
    schedules.add_argument("action", choices=["list"])
    schedules.set_defaults(handler=cmd_schedules)

    evaluate = sub.add_parser(
        "evaluate-endpoint",
        parents=[workspace],
        help="re-score a local endpoint's champion and challenger on new data and captured traffic",
        description="Continuous evaluation: perplexity on the newest validated data, answers to captured prompts "
        "that have references, latency, error rate and throughput per variant, each with a 95% interval; the "
        "challenger compared with the champion. Exit 1 when the challenger is worse beyond its interval.",
    )
    evaluate.add_argument("name", help="the endpoint (the job's name)")
    evaluate.add_argument("--max-examples", type=int, default=200, help="held-out examples scored per version")
    evaluate.add_argument(
        "--rollback-on-fail", action="store_true", help="roll the challenger back on a failed verdict"
    )
    evaluate.set_defaults(handler=cmd_evaluate_endpoint)
    capture = sub.add_parser(
        "capture",
        parents=[workspace],
        help="an endpoint's captured, answered chat exchanges as chat records (JSONL)",
        description="Turn an endpoint's captured traffic (deploy.capture_percent) into chat training records, "
        "each conversation with the answer the endpoint gave: check them with `trainforge validate`, review "
        "them, and train on what you keep. Locally the captures are PII-redacted already; SageMaker's are not.",
    )
    capture.add_argument("name", help="the endpoint (the job's name)")
    capture.add_argument("--artifacts", help="the stack's artifacts bucket (s3://BUCKET) for a SageMaker endpoint")
    capture.add_argument("--out", help="write the records here (default: standard output)")
    capture.set_defaults(handler=cmd_capture)
    plan = sub.add_parser(
        "plan",
        parents=[workspace],
        help="time, cost, memory and 'will it deploy?' of a job spec, before any compute",
        description="Validate the spec's data (nothing is written) and plan the run: work, memory fit, time and cost "
        "per instance type, deployability and quota names. Exit 1 when the pipeline would refuse the run.",
    )
    plan.add_argument("spec", help="the job spec, e.g. jobs/support.yaml")
    plan.add_argument("--instance-type", action="append", default=[], help="another type to compare (repeatable)")
    plan.add_argument("--local", action="store_true", help="plan the run on this machine, as `trainforge run` trains")
    plan.add_argument("--region", help="prices of this region (default $AWS_REGION, else us-east-1)")
    plan.add_argument("--prices", help="a price file (JSON or YAML) merged over the built-in table")
    plan.add_argument("--data-root", help="folder that data paths in the spec are relative to")
    plan.add_argument("--json", action="store_true", help="print the plan as JSON")
    plan.set_defaults(handler=cmd_plan)
    convert = sub.add_parser(
        "convert-whisper",
        help="turn a CTranslate2 (faster-whisper) Whisper folder into an HF folder to train from",
        description="Read a CTranslate2 Whisper (model.bin, config.json, tokenizer.json; float16, bfloat16 or int8 "
        "weights) and write an HF Whisper folder: weights, config, tokenizer, feature extractor. Use it as "
        "base_model: file:///.../TARGET.",
    )
    convert.add_argument("source", help="the CTranslate2 model folder")
    convert.add_argument("target", help="the HF folder to write")
    convert.add_argument(
        "--part", action="append", default=[], help="a model.bin part, in order (repeatable), when it is split"
    )
    convert.set_defaults(handler=cmd_convert_whisper)
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
