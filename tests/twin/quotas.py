"""Service Quotas' ListServiceQuotas for SageMaker, added to moto's response class (moto 5.2.5 implements
Service Quotas for ``vpc`` only), so that the plan reads the account's instance quotas as it does in AWS.

SageMaker names its instance quotas "ml.TYPE for training job usage", "... for spot training job usage",
"... for processing job usage" and "... for endpoint usage"
(https://docs.aws.amazon.com/general/latest/gr/sagemaker.html#limits_sagemaker). The twin's account has
``default`` of each for the types its rules know the storage of, plus the CPU types the tests train on;
a test sets ``values[name]`` to give a quota another value (0: the empty quota of a new account). Quota
codes are the twin's own (AWS assigns ``L-`` codes per quota and does not derive them from the name).
The answer is paged by ``MaxResults`` (default 100) with a ``NextToken``, as the API pages it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from moto.servicequotas.responses import ServiceQuotasResponse

from tests.twin.rules import LOCAL_STORAGE_GB
from tests.twin.wire import Patches

USAGES = ("training job usage", "spot training job usage", "processing job usage", "endpoint usage")
_CPU_TYPES = [f"ml.m5.{size}" for size in ("large", "xlarge", "2xlarge", "4xlarge", "12xlarge", "24xlarge")] + [
    f"ml.c5.{size}" for size in ("xlarge", "2xlarge", "4xlarge", "9xlarge", "18xlarge")
]


def quota_code(name: str) -> str:
    return "L-" + hashlib.sha1(name.encode()).hexdigest()[:8].upper()


class SageMakerQuotas:
    def __init__(self, default: float = 4) -> None:
        self.values: dict[str, float] = {
            f"{instance} for {usage}": default for instance in [*LOCAL_STORAGE_GB, *_CPU_TYPES] for usage in USAGES
        }

    def page(self, region: str, account: str, token: str | None, size: int) -> dict[str, Any]:
        names = sorted(self.values)
        start = int(token or 0)
        quotas = [
            {
                "ServiceCode": "sagemaker",
                "ServiceName": "Amazon SageMaker",
                "QuotaArn": f"arn:aws:servicequotas:{region}:{account}:sagemaker/{quota_code(name)}",
                "QuotaCode": quota_code(name),
                "QuotaName": name,
                "Value": self.values[name],
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

        def list_service_quotas(self: ServiceQuotasResponse) -> str:
            params = json.loads(self.body)
            if params.get("ServiceCode") != "sagemaker":
                raise NotImplementedError("the twin lists SageMaker's quotas only")
            page = quotas.page(
                self.region, self.current_account, params.get("NextToken"), params.get("MaxResults", 100)
            )
            return json.dumps(page)

        patches.set(ServiceQuotasResponse, "list_service_quotas", list_service_quotas)
