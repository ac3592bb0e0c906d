"""The Plan step, between validation and Prepare: the run's plan (``trainforge.planning``) from its spec, its
dataset report and its base model's ``config.json``, saved as ``plan.json`` beside the reports. A run the
plan refuses (it cannot fit its instance, cannot deploy where the spec says, or a SageMaker quota it needs
is too low) ends here with ``PlanRefused``, before any SageMaker call.

Both runners call :func:`plan_run`: the state machine through the ``plan_run`` Lambda (:func:`handle_plan`,
which also reads the account's SageMaker quotas through Service Quotas), the local runner directly, for
this machine. ``trainforge plan`` calls :func:`plan_job`, which validates the data as the run would but
writes nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from trainforge.aws.sagemaker_requests import volume_size_gb
from trainforge.contracts import DatasetReport, Plan, RunRequest
from trainforge.errors import PlanRefused
from trainforge.instances import instance_type
from trainforge.pipeline.admission import admit, load_run
from trainforge.pipeline.layout import RunLayout
from trainforge.pipeline.platform import Platform
from trainforge.pipeline.steps import base_model, evaluation_instance, weights_footprint
from trainforge.planning.architecture import ModelShape, UnknownArchitecture
from trainforge.planning.machines import Machine, cpu_cores, physical_cores
from trainforge.planning.plan import PlanInputs, make_plan
from trainforge.planning.prices import Prices, load_prices
from trainforge.planning.quotas import SERVICE_CODE
from trainforge.settings import Settings
from trainforge.spec import JobSpec
from trainforge.store import join, open_store
from trainforge.tuning.auto import resolve_spec

#: where a base model's folder keeps its processor's settings (transformers 5 writes the first, with the image
#: processor nested; older folders the second)
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
#: a price file the platform team may put in the artifacts bucket (``planning.prices``'s format)
PRICES_KEY = ("config", "prices.json")
DEFAULT_REGION = "us-east-1"
#: how long the plan waits for Service Quotas: botocore's defaults (60 s to connect, 60 s to read, 5 attempts
#: in its legacy retry mode) outlast the Plan function's 5 minutes when the VPC has no path to the service;
#: with these a missing path costs seconds and the plan goes ahead with the quotas named, not judged
#: (https://docs.aws.amazon.com/boto3/latest/guide/retries.html)
QUOTA_CLIENT_CONFIG: dict[str, Any] = {
    "connect_timeout": 5,
    "read_timeout": 20,
    "retries": {"mode": "standard", "total_max_attempts": 2},
}


def _read_json(uri: str) -> Any:
    return json.loads(open_store(uri).read_bytes(uri))


def prices_at(artifacts_uri: str) -> Prices:
    """The built-in price table, with ``config/prices.json`` of the artifacts root merged over it if present."""
    uri = join(artifacts_uri, *PRICES_KEY)
    store = open_store(uri)
    return load_prices(store.read_bytes(uri), uri) if store.exists(uri) else load_prices()


def local_machine() -> Machine:
    """This machine as the local runner trains on it (local mode only: reads the devices through torch)."""
    import torch

    from trainforge.planning.throughput import TRAINING_RATES
    from trainforge.training.cpu_features import native_bf16
    from trainforge.training.launch import processes_per_node
    from trainforge.training.memory import host_capacity

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
        known = next((device for device, _ in TRAINING_RATES if name.startswith(device)), name)
        return Machine(
            name="local",
            device="cuda",
            device_name=known,
            processes=processes_per_node(),
            nodes=1,
            capacity=int(torch.cuda.mem_get_info(0)[1]),
            native_bf16=bool(torch.cuda.is_bf16_supported(including_emulation=False)),
            accelerators=torch.cuda.device_count(),
        )
    cpus = os.sched_getaffinity(0)
    return Machine(
        name="local",
        device="cpu",
        device_name="cpu",
        processes=1,
        nodes=1,
        capacity=host_capacity().bytes,
        native_bf16=native_bf16().native,
        cores=physical_cores(cpus) or cpu_cores(len(cpus)),
    )


def service_quotas_client() -> Any:
    """The Service Quotas client the ``plan_run`` Lambda reads with (``QUOTA_CLIENT_CONFIG``)."""
    import boto3
    from botocore.config import Config

    return boto3.client("service-quotas", config=Config(**QUOTA_CLIENT_CONFIG))


def read_quotas(client: Any) -> dict[str, tuple[str, float]]:
    """Every SageMaker quota of the account and region: name -> (code, value). ListServiceQuotas lists the
    applied values only ("If the applied quota value is not available for a quota, the quota is not
    retrieved": https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_ListServiceQuotas.html),
    so a quota never changed from its default, such as a new account's 0 for most GPU types, is absent
    there; ListAWSDefaultServiceQuotas gives the default of the names it lacks
    (https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_ListAWSDefaultServiceQuotas.html)."""
    applied = _listed(client, "list_service_quotas")
    return _listed(client, "list_aws_default_service_quotas") | applied


def _listed(client: Any, operation: str) -> dict[str, tuple[str, float]]:
    """A quota Service Quotas could not read comes with an ``ErrorReason`` and no ``Value``
    (https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_ServiceQuota.html): it is left
    out, so the plan names it unread rather than judging it."""
    found = {}
    for page in client.get_paginator(operation).paginate(ServiceCode=SERVICE_CODE):
        for quota in page["Quotas"]:
            if "Value" in quota and "ErrorReason" not in quota:
                found[quota["QuotaName"]] = (quota["QuotaCode"], float(quota["Value"]))
    return found


def build_plan(
    request: RunRequest,
    spec: JobSpec,
    report: DatasetReport,
    platform: Platform,
    *,
    region: str,
    prices: Prices | None = None,
    quotas: Mapping[str, tuple[str, float]] | None = None,
    instance_types: Sequence[str] = (),
    here: bool | None = None,
    notes: Sequence[str] = (),
) -> Plan:
    """The plan, written nowhere. ``here``: plan for this machine (the local runner's case; default: in local
    mode), else for the spec's instance type; ``instance_types``: more types to compare."""
    here = platform.local if here is None else here
    _, base_uri = base_model(spec, platform)
    store = open_store(base_uri)
    config = _read_json(join(base_uri, "config.json"))
    resolved = resolve_spec(spec, report, config)  # the plan counts the steps the run will take
    spec, notes = resolved.spec, [*notes, *resolved.notes()]
    files = [info.uri.rsplit("/", 1)[-1] for info in store.list(base_uri.rstrip("/") + "/")]
    # an image+text model's processor says how many tiles an image becomes (planning/media.py)
    processor: dict[str, Any] = next(
        (_read_json(join(base_uri, name)) for name in PROCESSOR_FILES if name in files), {}
    )
    weight_bytes, width = weights_footprint(base_uri)
    if not weight_bytes:  # a folder with the config alone (a plan of a model not uploaded yet)
        try:
            weight_bytes = ModelShape.from_config(config).parameters * width
        except UnknownArchitecture:
            weight_bytes = 0
    named = [spec.compute.instance_type, *instance_types] if not here else list(instance_types)
    named = [name for name in dict.fromkeys(named) if name != "local"]
    machines = [local_machine()] if here else []
    machines += [Machine.from_instance(instance_type(name), spec.compute.instance_count) for name in named]
    evaluation = machines[0] if here else Machine.from_instance(instance_type(evaluation_instance(spec, base_uri)))
    inputs = PlanInputs(
        spec=spec,
        report=report,
        config=config,
        files=files,
        base_bytes=weight_bytes,
        machines=machines,
        evaluation=evaluation,
        prices=prices or prices_at(platform.artifacts_uri),
        region=region,
        local=here,
        run_id=request.run_id,
        quotas=quotas,
        processor=processor,
        volumes={m.name: volume_size_gb(instance_type(m.name), weight_bytes) for m in machines if m.name != "local"},
        notes=list(notes),
    )
    return make_plan(inputs)


def plan_run(
    request: RunRequest,
    spec: JobSpec,
    report: DatasetReport,
    platform: Platform,
    *,
    region: str = DEFAULT_REGION,
    quotas: Mapping[str, tuple[str, float]] | None = None,
    notes: Sequence[str] = (),
) -> Plan:
    """The Plan step: plan.json written; PlanRefused, naming each reason and its alternative, when the run
    cannot succeed."""
    plan = build_plan(request, spec, report, platform, region=region, quotas=quotas, notes=notes)
    layout = RunLayout(platform.artifacts_uri, request.run_id)
    open_store(layout.plan).write_bytes(layout.plan, plan.model_dump_json(indent=2).encode(), "application/json")
    if plan.refusals:
        raise PlanRefused(
            f"the plan refuses this run: {' | '.join(plan.refusals)}; plan: {layout.plan}", details=layout.plan
        )
    return plan


def handle_plan(event: dict[str, Any], settings: Settings, quota_client: Any = None) -> dict[str, Any]:
    """The ``plan_run`` Lambda: the plan with the account's quotas, and what the state machine keeps of it."""
    from botocore.exceptions import BotoCoreError, ClientError

    from trainforge.pipeline.handlers import aws_platform, aws_resources

    request = RunRequest.model_validate(event["run"])
    report = DatasetReport.model_validate(event["dataset"])
    spec = load_run(settings.resolved_artifacts_uri(), request.run_id)[1]
    region = aws_resources(settings).region
    notes = []
    try:
        quotas: dict[str, tuple[str, float]] | None = read_quotas(quota_client or service_quotas_client())
    except (ClientError, BotoCoreError) as exc:
        quotas = None
        notes.append(f"SageMaker quotas not read from Service Quotas ({exc}): check them before the run")
    plan = plan_run(request, spec, report, aws_platform(settings), region=region, quotas=quotas, notes=notes)
    option = plan.requested
    return {
        "plan_uri": RunLayout(settings.resolved_artifacts_uri(), request.run_id).plan,
        "instance_type": option.instance_type,
        "verdict": option.verdict,
        "training_seconds_high": option.time.training_seconds_high if option.time else None,
        "total_usd_high": option.cost.total_usd_high if option.cost else None,
    }


def plan_job(
    spec_path: Path,
    settings: Settings,
    *,
    instance_types: Sequence[str] = (),
    prices: Prices | None = None,
    region: str | None = None,
    here: bool = False,
) -> Plan:
    """``trainforge plan``: validate the spec's data as a run would (the base model's tokenizer), without
    writing a report or a redacted copy, and plan it. A dataset report a run of the same spec and data
    already wrote is reused."""
    from trainforge.data.parallel import validate_parallel
    from trainforge.data.shards import options_from_json
    from trainforge.local.file_store import uri_to_path
    from trainforge.pipeline.validation_fanout import validation_inputs

    platform = Platform.from_settings(settings, local=True)
    request, spec = admit(
        spec_path.resolve().as_uri(), spec_path.read_bytes(), None, platform.data_root, platform.artifacts_uri, "cli"
    )
    layout = RunLayout(platform.artifacts_uri, request.run_id)
    if open_store(layout.dataset_report).exists(layout.dataset_report):
        report = DatasetReport.model_validate(_read_json(layout.dataset_report))
    else:
        inputs = validation_inputs(request, spec, platform)
        tokenizer = uri_to_path(inputs.tokenizer_uri) if inputs.tokenizer_uri else None
        options = options_from_json(inputs.options, tokenizer_file=tokenizer, redact_into={})
        report = validate_parallel(inputs.uris, open_store(inputs.uris[0]), options)
    region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or DEFAULT_REGION
    return build_plan(
        request, spec, report, platform, region=region, prices=prices, instance_types=instance_types, here=here
    )
