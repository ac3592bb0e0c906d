"""What a run costs: its jobs' billed hours at the price table's rates (``planning.prices``), plus storage.

A SageMaker job bills its instances from the start of its Downloading phase to the end of its upload, per
second (https://aws.amazon.com/sagemaker/ai/pricing/); the plan bills each job its compute time plus half
of the run's start-up time (the training and the evaluation job each start once). Spot training pays the
spot price; the evaluation job (processing) runs on demand. Storage: the training volume for the training
job's hours, and one month of S3 for the exported model and its checkpoints (weights, and for a full
fine-tune AdamW's two moments).
"""

from __future__ import annotations

from trainforge.contracts import PlannedCost, PlannedTime
from trainforge.planning.machines import Machine
from trainforge.planning.memory import GiB
from trainforge.planning.prices import HOURS_PER_MONTH, Prices
from trainforge.spec import JobSpec

LOCAL_SOURCE = "local: this machine, no charge"


def dollars(low: float | None, high: float | None) -> str:
    """A cost range as people read it: one figure when both ends round to the same cent; "no price" when
    the price table has none for the type and region."""
    if low is None or high is None:
        return "no price"
    first, last = f"{low:.2f}", f"{high:.2f}"
    return f"${last}" if first == last else f"${first}-{last}"


def planned_cost(
    spec: JobSpec,
    time: PlannedTime,
    machine: Machine,
    evaluation: Machine,
    prices: Prices,
    region: str,
    *,
    volume_gb: int,
    model_bytes: int,
    at_once: int = 1,
) -> PlannedCost:
    """``volume_gb``: the training job's volume (``sagemaker_requests.volume_size_gb``); ``model_bytes``:
    the exported model's weights; ``at_once``: a tuning run's trials that run together (``planning.trials``:
    ``time`` spans its waves, each billing that many jobs)."""
    if machine.name == "local":
        return PlannedCost(
            region="local",
            on_demand_usd_per_hour=None,
            spot_usd_per_hour=None,
            training_usd_per_hour=0.0,
            training_usd_low=0.0,
            training_usd_high=0.0,
            on_demand_usd_high=0.0,
            evaluation_usd=0.0,
            storage_usd=0.0,
            total_usd_high=0.0,
            price_source=LOCAL_SOURCE,
        )
    on_demand = prices.hourly(region, machine.name)
    spot = prices.spot_hourly(region, machine.name)
    hourly = spot if spec.compute.spot else on_demand
    start = time.startup_seconds / 2
    billed_low = time.process_start_seconds + time.training_seconds_low + start
    billed_high = time.process_start_seconds + time.training_seconds_high + start
    jobs = machine.nodes * at_once
    low_hours, high_hours = billed_low / 3600 * jobs, billed_high / 3600 * jobs
    evaluation_hourly = prices.hourly(region, evaluation.name)
    evaluation_usd = None if evaluation_hourly is None else (time.evaluation_seconds + start) / 3600 * evaluation_hourly
    checkpoints = model_bytes * (3 if spec.method not in ("lora", "dpo") else 1)
    storage = (
        volume_gb * prices.ml_storage_usd_per_gb_month * high_hours / HOURS_PER_MONTH
        + (model_bytes + checkpoints) / GiB * prices.s3_usd_per_gb_month
    )
    training_low = _usd(hourly, low_hours)
    training_high = _usd(hourly, high_hours)
    total = None if training_high is None or evaluation_usd is None else training_high + evaluation_usd + storage
    missing = [
        name for name, price in ((machine.name, on_demand), (evaluation.name, evaluation_hourly)) if price is None
    ]
    source = prices.source + (f"; no price for {', '.join(missing)} in {region}" if missing else "")
    return PlannedCost(
        region=region,
        on_demand_usd_per_hour=on_demand,
        spot_usd_per_hour=spot,
        training_usd_per_hour=None if hourly is None else hourly * jobs,
        training_usd_low=training_low,
        training_usd_high=training_high,
        on_demand_usd_high=_usd(on_demand, high_hours),
        evaluation_usd=None if evaluation_usd is None else round(evaluation_usd, 4),
        storage_usd=round(storage, 4),
        total_usd_high=None if total is None else round(total, 4),
        price_source=source,
    )


def _usd(hourly: float | None, hours: float) -> float | None:
    return None if hourly is None else round(hourly * hours, 4)
