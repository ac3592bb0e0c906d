"""Service Quotas for SageMaker, added to moto's response class (moto 5.2.5 implements Service Quotas for
``vpc`` only), so that the plan reads the account's instance quotas as it does in AWS.

SageMaker names its instance quotas "ml.TYPE for training job usage", "... for spot training job usage",
"... for processing job usage" and "... for endpoint usage"
(https://docs.aws.amazon.com/general/latest/gr/sagemaker.html#limits_sagemaker). As in AWS, the two lists
differ: ListServiceQuotas returns the *applied* values only, and "if the applied quota value is not
available for a quota, the quota is not retrieved"
(https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_ListServiceQuotas.html): a quota
never changed from its default is absent there; ListAWSDefaultServiceQuotas returns every default
(https://docs.aws.amazon.com/servicequotas/2019-06-24/apireference/API_ListAWSDefaultServiceQuotas.html).

The twin's account is a new one whose quotas were raised: ``defaults`` are a new account's, 0 for the
accelerated types (GPU, Trainium, Gaudi: "many default to 0" on the quota page above) and ``cpu_default``
for CPU types (the twin's own figure: AWS's CPU defaults differ by type and account); ``values`` holds the
applied ones, every quota raised to ``raised``. A test sets ``values[name]`` to give a quota another value
(0: an increase taken back), or deletes it to leave the quota at its default. Quota codes are the twin's
own (AWS assigns ``L-`` codes per quota and does not derive them from the name). Answers are paged by
``MaxResults`` (default 100) with a ``NextToken``, as the API pages them.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from moto.servicequotas.responses import ServiceQuotasResponse

from tests.twin.rules import LOCAL_STORAGE_GB
from tests.twin.wire import Patches

USAGES = ("training job usage", "spot training job usage", "processing job usage", "endpoint usage")
_CPU_TYPES = [f"ml.m5.{size}" for size in ("large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge")] + [
    f"ml.c5.{size}" for size in ("xlarge", "2xlarge", "4xlarge", "9xlarge", "18xlarge")
]
#: instance families with an accelerator: NVIDIA GPUs (g, p), Trainium and Inferentia, Gaudi (dl)
_ACCELERATED = {"g", "p", "trn", "inf", "dl"}


def quota_code(name: str) -> str:
    return "L-" + hashlib.sha1(name.encode()).hexdigest()[:8].upper()


def accelerated(name: str) -> bool:
    family = re.match(r"ml\.([a-z]+)", name)
    return family is not None and family[1] in _ACCELERATED


class SageMakerQuotas:
    def __init__(self, raised: float = 10, cpu_default: float = 4) -> None:
        names = [f"{instance} for {usage}" for instance in [*LOCAL_STORAGE_GB, *_CPU_TYPES] for usage in USAGES]
        self.defaults: dict[str, float] = {name: 0 if accelerated(name) else cpu_default for name in names}
        self.values: dict[str, float] = dict.fromkeys(names, raised)

    def applied(self) -> dict[str, float]:
        """What ListServiceQuotas returns: the quotas whose value is not their default."""
        return {name: value for name, value in self.values.items() if value != self.defaults.get(name)}

    def page(self, values: dict[str, float], region: str, account: str, token: str | None, size: int) -> dict[str, Any]:
        names = sorted(values)
        start = int(token or 0)
        quotas = [
            {
                "ServiceCode": "sagemaker",
                "ServiceName": "Amazon SageMaker",
                "QuotaArn": f"arn:aws:servicequotas:{region}:{account}:sagemaker/{quota_code(name)}",
                "QuotaCode": quota_code(name),
                "QuotaName": name,
                "Value": values[name],
                "Unit": "None",
                "Adjustable": True,
                "GlobalQuota": False,
            }
            for name in names[start : start + size]
        ]
        answer: dict[str, Any] = {"Quotas": quotas}
        if start + size < len(names):
            answer["NextToken"] = str(start + size)
        return answer

    def install(self, patches: Patches) -> None:
        quotas = self

        def listing(values: Any) -> Any:
            def handler(self: ServiceQuotasResponse) -> str:
                params = json.loads(self.body)
                if params.get("ServiceCode") != "sagemaker":
                    raise NotImplementedError("the twin lists SageMaker's quotas only")
                page = quotas.page(
                    values(), self.region, self.current_account, params.get("NextToken"), params.get("MaxResults", 100)
                )
                return json.dumps(page)

            return handler

        patches.set(ServiceQuotasResponse, "list_service_quotas", listing(quotas.applied))
        patches.set(ServiceQuotasResponse, "list_aws_default_service_quotas", listing(lambda: quotas.defaults))
