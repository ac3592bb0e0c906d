"""What SageMaker charges, per instance type and region: the one price table a plan's cost reads.

The built-in table is SageMaker AI's on-demand training price per instance-hour in US East (N. Virginia),
US East (Ohio) and US West (Oregon), which list the same prices
(https://aws.amazon.com/sagemaker/ai/pricing/, "On-Demand Pricing", Training), as recorded from that page
for this project (``AS_OF``); the two trn1 prices are EC2's on-demand price plus the 15% SageMaker adds to
it, not read there. The machine that wrote the table has no network: the prices were not re-read then,
AWS changes them (it cut P4 and P5 prices in 2025), and types whose price was not known are left out (a
plan then says it has no price rather than guess one). Processing jobs and endpoints bill the same
instance-hour for these types.

Managed spot training bills the spot price of the moment, which no table holds
(https://docs.aws.amazon.com/sagemaker/latest/dg/model-managed-spot-training.html: "up to 90%" savings);
the table assumes ``SPOT_SHARE`` of the on-demand price unless a file gives a type's spot price.

Storage: the training job's ML storage volume per GB-month (the same pricing page, "ML storage") and the
run's objects in S3 Standard (https://aws.amazon.com/s3/pricing/, first 50 TB in us-east-1).

A file overrides any of it (``trainforge plan --prices FILE``; in AWS, ``config/prices.json`` in the
artifacts bucket): JSON or YAML of the shape of :class:`PriceFile`, merged over the built-in table.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from trainforge.errors import SpecInvalid

AS_OF = "2025-05"
SOURCE = (
    "SageMaker AI on-demand training prices, us-east-1 / us-east-2 / us-west-2 "
    "(https://aws.amazon.com/sagemaker/ai/pricing/), as of 2025-05; spot assumed at 30% of on-demand"
)
#: the share of the on-demand price a managed spot job is assumed to pay (a 70% saving)
SPOT_SHARE = 0.30
ML_STORAGE_USD_PER_GB_MONTH = 0.14
S3_USD_PER_GB_MONTH = 0.023
HOURS_PER_MONTH = 730

_US = {
    "ml.m5.large": 0.115,
    "ml.m5.xlarge": 0.23,
    "ml.m5.2xlarge": 0.461,
    "ml.m5.4xlarge": 0.922,
    "ml.m5.12xlarge": 2.765,
    "ml.m5.24xlarge": 5.53,
    "ml.c5.xlarge": 0.204,
    "ml.c5.2xlarge": 0.408,
    "ml.c5.4xlarge": 0.816,
    "ml.c5.9xlarge": 1.836,
    "ml.c5.18xlarge": 3.672,
    "ml.g4dn.xlarge": 0.736,
    "ml.g4dn.2xlarge": 0.94,
    "ml.g4dn.4xlarge": 1.505,
    "ml.g4dn.8xlarge": 2.72,
    "ml.g4dn.12xlarge": 4.89,
    "ml.g4dn.16xlarge": 5.44,
    "ml.g5.xlarge": 1.408,
    "ml.g5.2xlarge": 1.515,
    "ml.g5.4xlarge": 2.03,
    "ml.g5.8xlarge": 3.06,
    "ml.g5.12xlarge": 7.09,
    "ml.g5.16xlarge": 6.10,
    "ml.g5.24xlarge": 10.18,
    "ml.g5.48xlarge": 20.36,
    "ml.g6.xlarge": 1.1267,
    "ml.g6.2xlarge": 1.222,
    "ml.g6.4xlarge": 1.654,
    "ml.g6.12xlarge": 5.752,
    "ml.g6e.2xlarge": 2.80,
    "ml.g6e.12xlarge": 13.12,
    "ml.p3.2xlarge": 3.825,
    "ml.p3.8xlarge": 14.688,
    "ml.p3.16xlarge": 28.152,
    "ml.p4d.24xlarge": 37.688,
    "ml.trn1.2xlarge": 1.5435,
    "ml.trn1.32xlarge": 24.725,
}
ON_DEMAND: dict[str, dict[str, float]] = {"us-east-1": _US, "us-east-2": _US, "us-west-2": _US}


class _TypePrice(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    on_demand: float | None = Field(None, gt=0, description="USD per instance-hour")
    spot: float | None = Field(None, gt=0, description="USD per instance-hour on managed spot")


class PriceFile(BaseModel):
    """A price file: every field optional; what it names replaces the built-in figure."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    #: a date (YAML reads 2026-11-30 as one) or any text
    as_of: date | str | None = None
    source: str | None = None
    regions: dict[str, dict[str, _TypePrice]] = Field(default_factory=dict)
    spot_share: float | None = Field(None, gt=0, le=1)
    ml_storage_usd_per_gb_month: float | None = Field(None, ge=0)
    s3_usd_per_gb_month: float | None = Field(None, ge=0)


@dataclass(frozen=True)
class Prices:
    as_of: str = AS_OF
    source: str = SOURCE
    on_demand: dict[str, dict[str, float]] = field(default_factory=lambda: ON_DEMAND)
    spot: dict[str, dict[str, float]] = field(default_factory=dict)
    spot_share: float = SPOT_SHARE
    ml_storage_usd_per_gb_month: float = ML_STORAGE_USD_PER_GB_MONTH
    s3_usd_per_gb_month: float = S3_USD_PER_GB_MONTH

    def hourly(self, region: str, instance_type: str) -> float | None:
        return self.on_demand.get(region, {}).get(instance_type)

    def spot_hourly(self, region: str, instance_type: str) -> float | None:
        explicit = self.spot.get(region, {}).get(instance_type)
        if explicit is not None:
            return explicit
        on_demand = self.hourly(region, instance_type)
        return None if on_demand is None else on_demand * self.spot_share

    def merged(self, override: PriceFile) -> Prices:
        on_demand = {region: dict(types) for region, types in self.on_demand.items()}
        spot = {region: dict(types) for region, types in self.spot.items()}
        for region, types in override.regions.items():
            for name, price in types.items():
                if price.on_demand is not None:
                    on_demand.setdefault(region, {})[name] = price.on_demand
                if price.spot is not None:
                    spot.setdefault(region, {})[name] = price.spot
        return Prices(
            as_of=str(override.as_of or self.as_of),
            source=override.source or f"{self.source}; overridden by a price file",
            on_demand=on_demand,
            spot=spot,
            spot_share=override.spot_share or self.spot_share,
            ml_storage_usd_per_gb_month=_first(override.ml_storage_usd_per_gb_month, self.ml_storage_usd_per_gb_month),
            s3_usd_per_gb_month=_first(override.s3_usd_per_gb_month, self.s3_usd_per_gb_month),
        )


def _first(value: float | None, default: float) -> float:
    return default if value is None else value


def load_prices(text: str | bytes | None = None, source: str = "<prices>") -> Prices:
    """The built-in table, with the price file ``text`` (JSON or YAML) merged over it when given."""
    if text is None:
        return Prices()
    try:
        data = yaml.safe_load(text)
        return Prices().merged(PriceFile.model_validate(data or {}))
    except yaml.YAMLError as exc:
        raise SpecInvalid(f"{source}: not valid YAML/JSON: {exc}") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or '(root)'}: {e['msg']}" for e in exc.errors())
        raise SpecInvalid(
            f"{source}: not a price file ({problems}); expected {{as_of, source, regions: {{REGION: {{TYPE: "
            "{on_demand, spot}}}}, spot_share, ml_storage_usd_per_gb_month, s3_usd_per_gb_month}"
        ) from exc
