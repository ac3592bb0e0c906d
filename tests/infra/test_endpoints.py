"""Every AWS API the deployed code calls has a VPC endpoint: the functions and jobs run in isolated subnets
with no route out, so a client without one hangs until its timeout instead of failing fast. The services
are read from the code itself (every ``boto3.client("...")``, and Powertools' DynamoDB idempotency), so a
new client without an endpoint fails here."""

from __future__ import annotations

import re

from tests.conftest import ROOT
from tests.infra.policies import resources

#: runs on the operator's machine, not in the VPC (``trainforge ... --aws`` invokes the functions by name)
OFF_VPC = {"src/trainforge/cli.py"}
#: boto3 client name -> the VPC endpoint's service (com.amazonaws.REGION.<this>)
ENDPOINT_OF = {
    "s3": "s3",
    "dynamodb": "dynamodb",
    "sagemaker": "sagemaker.api",
    "sagemaker-runtime": "sagemaker.runtime",
    "stepfunctions": "states",
    "logs": "logs",
    "cloudwatch": "monitoring",
    "scheduler": "scheduler",
    "bedrock": "bedrock",
    "service-quotas": "servicequotas",
}
_CLIENT = re.compile(r"""boto3\.client\(\s*["']([a-z0-9-]+)["']""")


def clients_in_code() -> dict[str, set[str]]:
    """boto3 client name -> the files (under src/trainforge and functions/) that build one."""
    found: dict[str, set[str]] = {}
    for path in [*(ROOT / "src/trainforge").rglob("*.py"), *(ROOT / "functions").rglob("*.py")]:
        name = str(path.relative_to(ROOT))
        if name in OFF_VPC:
            continue
        text = path.read_text()
        services = set(_CLIENT.findall(text))
        if "DynamoDBPersistenceLayer" in text:  # Powertools builds its own DynamoDB client
            services.add("dynamodb")
        for service in services:
            found.setdefault(service, set()).add(name)
    return found


def vpc_endpoint_services(synthesized) -> set[str]:
    """The service of every VPC endpoint: ServiceName is com.amazonaws.REGION.SERVICE, the region written
    out (interface endpoints) or a reference to AWS::Region (gateway endpoints: ["com.amazonaws.", region,
    ".SERVICE"] joined)."""
    names = set()
    for endpoint in resources(synthesized, "training", "AWS::EC2::VPCEndpoint").values():
        name = endpoint["Properties"]["ServiceName"]
        if isinstance(name, dict):
            names.add(name["Fn::Join"][1][-1].lstrip("."))
            continue
        match = re.fullmatch(r"com\.amazonaws\.[a-z0-9-]+\.(.+)", name)
        assert match, name
        names.add(match[1])
    return names


def test_every_client_the_code_builds_is_in_the_table():
    clients = clients_in_code()
    assert {"sagemaker", "s3", "service-quotas", "scheduler"} <= set(clients)  # the scan finds them
    unknown = {service: sorted(files) for service, files in clients.items() if service not in ENDPOINT_OF}
    assert not unknown, f"add the VPC endpoint of these clients to infra/stacks/training.py and here: {unknown}"
    assert set(ENDPOINT_OF) == set(clients), "the table names a client no code builds any more"


def test_every_service_the_code_calls_has_a_vpc_endpoint(synthesized):
    endpoints = vpc_endpoint_services(synthesized)
    missing = {client: ENDPOINT_OF[client] for client in clients_in_code() if ENDPOINT_OF[client] not in endpoints}
    assert not missing, f"no VPC endpoint for {missing}: the isolated subnets have no other route to them"
