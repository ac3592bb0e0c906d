"""The plan of a run: work, memory fit, time and cost per instance type, deployability and quotas, and the
reasons, if any, for which the pipeline refuses the run before any compute starts.

Everything comes from the job spec, the dataset report and the base model's ``config.json`` and file list:
no torch, no weights. The pipeline's Plan step (``pipeline/plan_step.py``) and ``trainforge plan`` gather
those and call :func:`make_plan`; how each estimate is built is in docs/planning.md.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from trainforge.contracts import (
    DatasetReport,
    InstancePlan,
    Plan,
    PlannedActual,
    PlannedMemory,
    QuotaHint,
    TrainingResult,
)
from trainforge.instances import INSTANCE_TYPES
from trainforge.planning.architecture import ModelShape, UnknownArchitecture
from trainforge.planning.cost import dollars, planned_cost
from trainforge.planning.deployability import EXPORT_BYTES_PER_PARAMETER, plan_deployment
from trainforge.planning.duration import duration, planned_time, span
from trainforge.planning.machines import Machine
from trainforge.planning.media import MediaShape, MediaWorkload, media_rows
from trainforge.planning.memory import MemoryFit, fit_to_memory, gib
from trainforge.planning.prices import Prices
from trainforge.planning.quotas import judged, needed_quotas
from trainforge.planning.trials import trials
from trainforge.planning.work import DataShape, data_shape, planned_work
from trainforge.spec import Hyperparameters, JobSpec, exact_match_refusal, replay_refusal

#: the shortest max_seq_len a plan suggests as a lever
_SHORTEST_SUGGESTED = 256


@dataclass(frozen=True)
class PlanInputs:
    spec: JobSpec
    report: DatasetReport
    #: the base model's config.json, the names in its folder and the bytes of its weight files
    config: Mapping[str, Any]
    files: Collection[str]
    base_bytes: int
    #: where it would train: the requested machine first, then the others to compare
    machines: list[Machine]
    #: where the evaluation job runs
    evaluation: Machine
    prices: Prices
    region: str
    #: local mode: the run trains here and serves locally, whatever deploy.target says
    local: bool = False
    run_id: str | None = None
    #: Service Quotas' SageMaker quotas (name -> (code, value)); None when they were not read
    quotas: Mapping[str, tuple[str, float]] | None = None
    #: the training job's volume per instance type (GB), for storage cost
    volumes: Mapping[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: the base model's processor config (an image+text model's tiles per image), when its folder has one
    processor: Mapping[str, Any] = field(default_factory=dict)


Shape = ModelShape | MediaWorkload


def model_shape(inputs: PlanInputs) -> tuple[Shape, ModelShape | None]:
    """What the estimates read of the base model: a speech or image+text model with the report's examples
    (``planning.media``), else a text model's shape; and the text model's shape the deployment checks read
    (an image+text model's language model; none for speech). UnknownArchitecture when neither fits."""
    media = MediaShape.from_config(inputs.config, inputs.processor)
    if media is None:
        text = ModelShape.from_config(inputs.config)
        return text, text
    return MediaWorkload(media, media_rows(media, inputs.report)), media.text


def make_plan(inputs: PlanInputs) -> Plan:
    spec = inputs.spec
    notes = list(inputs.notes)
    shape: Shape | None = None
    language: ModelShape | None = None
    try:
        shape, language = model_shape(inputs)
    except UnknownArchitecture as exc:
        notes.append(f"memory, time and cost not estimated: {exc}")
    if isinstance(shape, MediaWorkload):
        notes.append(shape.describe())
    data = data_shape(spec, inputs.report)
    if not data.counted:
        notes.append(f"tokens estimated from the data's bytes: the base model has no tokenizer ({data.tokenizer})")
    if inputs.report.split is None and spec.data.validation:
        notes.append("data.validation is a file of its own: the report's tokens count it with the training data")
    options = [
        _instance(inputs, machine, shape, data, requested=index == 0) for index, machine in enumerate(inputs.machines)
    ]
    requested = options[0]
    refusals: list[str] = []
    if not inputs.report.ok:  # the pipeline stops such a run at Validate; `trainforge plan` says so too
        total = sum(inputs.report.error_counts.values()) or len(inputs.report.errors)
        first = inputs.report.errors[0].render() if inputs.report.errors else "see the dataset report"
        refusals.append(
            f"the data is rejected ({total} errors; the first: {first}): fix it, `trainforge validate` lists every error"
        )
    detected = inputs.report.format or spec.data.format  # the detected format: auto no more
    refusals += [
        refused for refused in (replay_refusal(spec, detected), exact_match_refusal(spec, detected)) if refused
    ]
    smallest = _smallest_fitting(inputs, shape, data) if shape is not None else None
    # method custom: the estimates are the built-in loop's; the script's own memory and time are not known
    own_code = spec.method == "custom"
    if own_code:
        notes.append(
            "method custom: memory, time and cost are estimated as for the built-in loop on this base model and "
            "data; your script's own may differ, so the plan refuses nothing on them"
        )
    if requested.verdict == "does_not_fit" and requested.memory is not None and not own_code:
        refusals.append(_memory_refusal(spec, requested, smallest, shape))
    comparison, counterpart = _trainium_vs_gpu(inputs, shape, data, requested)
    if counterpart is not None and counterpart.instance_type not in {o.instance_type for o in options}:
        options.append(counterpart)
    deployment = plan_deployment(spec, inputs.config, inputs.files, language, region=inputs.region)
    if not deployment.ok:
        failed = "; ".join(check.detail for check in deployment.checks if not check.ok)
        text = f"deploy.target {deployment.target} cannot take this model: {failed}"
        alternatives = f"; instead: {' or '.join(deployment.alternatives)}" if deployment.alternatives else ""
        if inputs.local:
            notes.append(f"in AWS this spec would be refused: {text}{alternatives}")
        else:
            refusals.append(text + alternatives)
    quotas = needed_quotas(spec, inputs.evaluation.name)
    if inputs.quotas is not None:
        quotas = judged(quotas, inputs.quotas)
        refusals += [_quota_refusal(hint) for hint in quotas if hint.status == "too_low"]
    time = requested.time
    limit = spec.compute.max_runtime_hours * 3600
    if time is not None and not inputs.local and time.training_seconds_low > limit and not own_code:
        refusals.append(
            f"training needs at least {time.training_seconds_low / 3600:.1f} h on {requested.instance_type}, over "
            f"compute.max_runtime_hours {spec.compute.max_runtime_hours:g} (SageMaker stops the job there): raise "
            "it, lower epochs or max_steps, or use a faster instance type"
        )
    elif time is not None and not inputs.local and time.training_seconds_high > limit:
        notes.append(f"training may take up to {time.training_seconds_high / 3600:.1f} h, past max_runtime_hours")
    if spec.tuning is not None and spec.hyperparameters.distributed == "fsdp" and inputs.machines[0].world_size > 1:
        refusals.append(_sharded_tuning_refusal(requested.instance_type, inputs.machines[0].world_size))
    if spec.tuning is not None:
        search = trials(spec, local=inputs.local)
        notes.append(
            f"tuning: {search.jobs} trials, {search.at_once} at a time{', then the refit' if search.refit else ''}; "
            "time and cost count every trial to its end "
            "(early stopping ends some sooner), and the training quota covers the trials that run together"
        )
    if time is not None and not time.throughput_measured:
        notes.append(f"the time on {requested.instance_type} rests on an assumed throughput, not a measured one")
    return Plan(
        run_id=inputs.run_id,
        job_name=spec.name,
        base_model=spec.base_model,
        method=spec.method,
        region=inputs.region,
        work=planned_work(spec, data, inputs.machines[0].world_size, _row_tokens(shape)),
        instances=options,
        smallest_fitting=smallest,
        trainium_vs_gpu=comparison,
        deployment=deployment,
        quotas=quotas,
        refusals=refusals,
        notes=notes,
        prices_as_of=inputs.prices.as_of,
    )


def _row_tokens(shape: Shape | None) -> float | None:
    return shape.row_tokens if isinstance(shape, MediaWorkload) else None


def _fit(spec: JobSpec, shape: Shape, machine: Machine) -> MemoryFit[Hyperparameters]:
    hyper = spec.hyperparameters
    return fit_to_memory(
        shape,
        hyper,
        spec.method,
        device=machine.device,
        bf16=machine.bf16(hyper),
        capacity=machine.capacity,
        world_size=machine.world_size,
    )


def _memory(fit: MemoryFit[Hyperparameters], machine: Machine) -> PlannedMemory:
    changed = {
        name: getattr(fit.hyperparameters, name)
        for name in ("batch_size", "grad_accum", "gradient_checkpointing")
        if getattr(fit.hyperparameters, name) != getattr(fit.requested, name)
    }
    return PlannedMemory(
        device=machine.device,
        processes=machine.world_size,
        bf16=machine.bf16(fit.requested),
        capacity_bytes=fit.capacity,
        budget_bytes=fit.budget,
        requested_bytes=fit.requested_estimate.total,
        parts=dict(fit.requested_estimate.parts),
        fits=fit.fits,
        fitted_bytes=fit.estimate.total,
        adjustments=changed,
    )


def _instance(
    inputs: PlanInputs, machine: Machine, shape: Shape | None, data: DataShape, *, requested: bool
) -> InstancePlan:
    spec = inputs.spec
    label = _accelerator(machine)
    if shape is None:
        return InstancePlan(instance_type=machine.name, requested=requested, accelerator=label, verdict="unknown")
    fit = _fit(spec, shape, machine)
    memory = _memory(fit, machine)
    if not fit.fits:
        memory = memory.model_copy(update={"change": _levers(spec, shape, machine)})
        return InstancePlan(
            instance_type=machine.name, requested=requested, accelerator=label, verdict="does_not_fit", memory=memory
        )
    work = planned_work(spec, data, machine.world_size, _row_tokens(shape))
    search = trials(spec, local=machine.name == "local")
    time = planned_time(
        spec,
        work,
        shape,
        fit.hyperparameters,
        machine,
        inputs.evaluation if machine.name != "local" else machine,
        context=_context(data, spec),
        base_bytes=inputs.base_bytes,
        local=machine.name == "local",
        waves=search.waves,
    )
    cost = None
    if time is not None:
        cost = planned_cost(
            spec,
            time,
            machine,
            inputs.evaluation,
            inputs.prices,
            inputs.region,
            volume_gb=inputs.volumes.get(machine.name, 0),
            model_bytes=shape.parameters * EXPORT_BYTES_PER_PARAMETER,
            at_once=search.at_once,
        )
    return InstancePlan(
        instance_type=machine.name,
        requested=requested,
        accelerator=label,
        verdict="adjusted" if fit.adjustments else "fits",
        memory=memory,
        time=time,
        cost=cost,
    )


def _accelerator(machine: Machine) -> str:
    if machine.device == "cpu":
        return f"CPU x{machine.cores} cores"
    return f"{machine.accelerators}x {machine.device_name}"


def _context(data: DataShape, spec: JobSpec) -> float:
    """Positions a token attends to on average: half its example (packed examples attend inside themselves)."""
    kept = data.train.kept(spec.hyperparameters.max_seq_len)
    return max(1.0, kept / max(data.train.examples, 1) / 2)


def _variants(spec: JobSpec, machine: Machine, shape: Shape) -> list[tuple[str, JobSpec]]:
    """The spec as written, then each lever that may make it fit ``machine``: LoRA, FSDP, both, a shorter
    max_seq_len (halved down to 256). A speech or image+text model has LoRA alone: its rows are examples,
    never cut to max_seq_len, and the media objectives are not sharded."""
    hyper = spec.hyperparameters
    variants: list[tuple[str, JobSpec]] = [("", spec)]
    full = spec.method in ("full", "continued_pretraining")
    if full:
        variants.append(("method: lora", spec.model_copy(update={"method": "lora"})))
    if isinstance(shape, MediaWorkload):
        return variants
    if machine.world_size > 1 and hyper.distributed == "ddp":
        fsdp = hyper.model_copy(update={"distributed": "fsdp"})
        variants.append(("distributed: fsdp", spec.model_copy(update={"hyperparameters": fsdp})))
        if full:
            both = spec.model_copy(update={"method": "lora", "hyperparameters": fsdp})
            variants.append(("method: lora + distributed: fsdp", both))
    length = hyper.max_seq_len // 2
    while length >= _SHORTEST_SUGGESTED:
        shorter = hyper.model_copy(update={"max_seq_len": length})
        variants.append((f"max_seq_len: {length}", spec.model_copy(update={"hyperparameters": shorter})))
        length //= 2
    return variants


def _levers(spec: JobSpec, shape: Shape, machine: Machine) -> str | None:
    """The first lever that makes ``machine`` fit; None if none does."""
    variants = _variants(spec, machine, shape)[1:]
    return next((text for text, changed in variants if _fit(changed, shape, machine).fits), None)


def _smallest_fitting(inputs: PlanInputs, shape: Shape, data: DataShape) -> str | None:
    """The cheapest SageMaker type (training cost at the high end of the time estimate; hourly price where
    the time cannot be estimated) on which the spec fits as written, or with the first lever that makes it
    fit (named after the type). Accelerated types only, unless the spec asks for a CPU type."""
    spec = inputs.spec
    cpu = inputs.machines[0].device == "cpu"
    found: list[tuple[bool, float, float, str]] = []
    for instance in INSTANCE_TYPES.values():
        if (instance.accelerator == "cpu") != cpu:
            continue
        machine = Machine.from_instance(instance, spec.compute.instance_count)
        for text, variant in _variants(spec, machine, shape):
            if not _fit(variant, shape, machine).fits:
                continue
            option = _instance(replace(inputs, spec=variant), machine, shape, data, requested=False)
            cost = option.cost.training_usd_high if option.cost else None
            price = cost if cost is not None else inputs.prices.hourly(inputs.region, instance.name)
            label = instance.name + (f" with {text}" if text else "")
            found.append((price is None, price or 0.0, instance.total_accelerator_memory_gib, label))
            break
    return min(found)[-1] if found else None


def _memory_refusal(spec: JobSpec, option: InstancePlan, smallest: str | None, shape: Shape | None) -> str:
    memory = option.memory
    assert memory is not None
    size = f" ({shape.parameters / 1e9:.1f}B parameters)" if shape is not None else ""
    where = {"cpu": "process", "cuda": "GPU", "neuron": "NeuronCore"}[memory.device]
    text = (
        f"{spec.method} fine-tuning of {spec.base_model}{size} does not fit {option.instance_type}: an estimated "
        f"{gib(memory.requested_bytes)} GiB per {where}, still {gib(memory.fitted_bytes)} GiB at micro-batch 1 with "
        f"gradient checkpointing, over a budget of {gib(memory.budget_bytes)} GiB"
    )
    changes = []
    if memory.change:
        changes.append(f"{memory.change} on {option.instance_type}")
    if smallest:
        changes.append(f"compute.instance_type: {smallest} (the cheapest that fits)")
    return text + (f"; instead: {' or '.join(changes)}" if changes else "")


def _sharded_tuning_refusal(instance: str, processes: int) -> str:
    """A trial's objective includes its forgetting, measured on the whole model at the trial's end; a model
    sharded over several processes (FSDP) is not measured there, so its trials would report no objective and
    the tuner could rank none of them."""
    return (
        f"tuning with distributed: fsdp on {instance} ({processes} processes): a sharded trial measures no "
        "forgetting and reports no objective; instead: distributed: ddp (with method: lora if the model does "
        "not fit one device), or a single-device compute.instance_type"
    )


def _quota_refusal(hint: QuotaHint) -> str:
    return (
        f"the SageMaker quota '{hint.name}' ({hint.code}) is {hint.value:g} in this account and region, the run "
        f"needs {hint.needed}: request an increase in Service Quotas or pick another instance type"
    )


def _trainium_vs_gpu(
    inputs: PlanInputs, shape: Shape | None, data: DataShape, requested: InstancePlan
) -> tuple[str | None, InstancePlan | None]:
    """The same job on the cheapest fitting type of the other kind: Trainium for a GPU request and the
    other way round; nothing for CPU or local requests."""
    machine = inputs.machines[0]
    if shape is None or machine.name == "local" or machine.device == "cpu":
        return None, None
    other = "cuda" if machine.device == "neuron" else "neuron"
    best: tuple[float, InstancePlan] | None = None
    for instance in INSTANCE_TYPES.values():
        if instance.accelerator != other:
            continue
        option = _instance(
            inputs, Machine.from_instance(instance, inputs.spec.compute.instance_count), shape, data, requested=False
        )
        if option.cost is None or option.cost.training_usd_high is None:
            continue
        if best is None or option.cost.training_usd_high < best[0]:
            best = (option.cost.training_usd_high, option)
    if best is None:
        return None, None
    counterpart = best[1]
    pair = (requested, counterpart) if machine.device == "cuda" else (counterpart, requested)
    return " vs ".join(_summary(option) for option in pair), counterpart


def _summary(option: InstancePlan) -> str:
    kind = "Trainium" if option.memory is not None and option.memory.device == "neuron" else "GPU"
    if option.time is None or option.cost is None or option.cost.training_usd_high is None:
        return f"{kind} {option.instance_type}: {option.verdict.replace('_', ' ')}"
    time, cost = option.time, option.cost
    hours = span(
        time.process_start_seconds + time.training_seconds_low, time.process_start_seconds + time.training_seconds_high
    )
    return f"{kind} {option.instance_type}: training {hours}, {dollars(cost.training_usd_low, cost.training_usd_high)}"


def planned_vs_actual(plan: Plan, result: TrainingResult) -> list[PlannedActual]:
    """The requested type's figures beside what the training job reported: its process's wall time, the
    real tokens it trained on, and its billed seconds at the plan's rate (AWS only: locally nothing bills)."""
    option = plan.requested
    rows = [
        PlannedActual(
            figure="tokens",
            planned=f"{plan.work.trained_tokens:,} in {plan.work.steps} steps",
            actual=f"{result.tokens_seen:,}",
        )
    ]
    time, cost = option.time, option.cost
    if time is None:
        return rows
    start = time.process_start_seconds
    rows.insert(
        0,
        PlannedActual(
            figure="training time",
            planned=span(start + time.training_seconds_low, start + time.training_seconds_high),
            actual=duration(result.wall_seconds),
        ),
    )
    if cost is not None and cost.region == "local":
        rows.append(PlannedActual(figure="cost", planned="none (local)", actual="none (local)"))
    elif cost is not None and cost.training_usd_low is not None and cost.training_usd_per_hour is not None:
        billed = result.billable_seconds
        actual = "not reported"
        if billed is not None:
            actual = f"${billed / 3600 * cost.training_usd_per_hour:.2f} ({billed:.0f} billed s)"
        planned = dollars(cost.training_usd_low, cost.training_usd_high)
        rows.append(PlannedActual(figure="cost", planned=planned, actual=actual))
    return rows
