"""The synthesized stacks, stood up in moto: what `cdk deploy` would create that a run touches.

Every value comes from the CloudFormation the CDK app synthesizes: bucket names, the table's keys, the
roles' trust policies, each function's environment, the state machine's definition (its S3 asset) and its
definition substitutions. ``Ref``, ``Fn::GetAtt``, ``Fn::ImportValue``, ``Fn::Join`` and ``Fn::Sub`` are
resolved by creating the resource they point at in moto, so a variable a function never receives, a role
no service may assume or a substitution the stack forgets shows up as a failed run, not as a passing test
of a hand-written environment.

Lambda functions run the handler of their synthesized code asset (``cdk.out/asset.HASH/app.py``)
in-process, with their synthesized environment: moto's Lambda without Docker would only echo the payload.
EventBridge rules are not delivered by moto; ``deliver`` checks an event against the synthesized rule's
pattern (with moto's own event-pattern matcher: its TestEventPattern is not implemented) and invokes the
rule's target function, as EventBridge would.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import re
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3

from tests.conftest import FakeContext, s3_event
from tests.twin import SageMakerTwin

ACCOUNT, REGION = "123456789012", "us-east-1"
PSEUDO = {
    "AWS::AccountId": ACCOUNT,
    "AWS::Region": REGION,
    "AWS::Partition": "aws",
    "AWS::URLSuffix": "amazonaws.com",
    "AWS::NoValue": None,
}


@dataclass
class Function:
    logical_id: str
    name: str
    arn: str
    code: Path
    environment: dict[str, str]
    _handler: Any = None

    def handler(self) -> Any:
        if self._handler is None:
            spec = importlib.util.spec_from_file_location(f"deployed_{self.logical_id}", self.code / "app.py")
            assert spec is not None and spec.loader is not None
            module = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(module)
            self._handler = module.handler
        return self._handler


@dataclass
class Deployed:
    """The stacks in moto. ``functions`` by logical id; ``function(name)`` by the folder under functions/."""

    templates: dict[str, dict[str, Any]]
    outdir: Path
    functions: dict[str, Function] = field(default_factory=dict)
    _created: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # --- resolving CloudFormation --------------------------------------------------------------------------

    def resource(self, stack: str, logical_id: str) -> dict[str, Any]:
        return self.templates[stack]["Resources"][logical_id]  # type: ignore[no-any-return]

    def resolve(self, stack: str, value: Any) -> Any:
        if isinstance(value, list):
            return [self.resolve(stack, v) for v in value]
        if not isinstance(value, dict):
            return value
        if len(value) != 1 or not next(iter(value)).startswith(("Fn::", "Ref")):
            return {k: self.resolve(stack, v) for k, v in value.items()}
        ((function, argument),) = value.items()
        if function == "Ref":
            return PSEUDO[argument] if argument in PSEUDO else self._attributes(stack, argument)["Ref"]
        if function == "Fn::GetAtt":
            logical_id, attribute = argument if isinstance(argument, list) else argument.split(".", 1)
            return self._attributes(stack, logical_id)[attribute]
        if function == "Fn::Join":
            separator, parts = argument
            return separator.join(str(self.resolve(stack, part)) for part in parts)
        if function == "Fn::Sub":
            text, variables = (argument, {}) if isinstance(argument, str) else argument
            values = {k: self.resolve(stack, v) for k, v in variables.items()}

            def substitute(match: re.Match[str]) -> str:
                name = match.group(1)
                if name in values:
                    return str(values[name])
                if name in PSEUDO:
                    return str(PSEUDO[name])
                logical_id, _, attribute = name.partition(".")
                return str(self._attributes(stack, logical_id)[attribute or "Ref"])

            return re.sub(r"\$\{([^}]+)\}", substitute, text)
        if function == "Fn::ImportValue":
            return self._export(self.resolve(stack, argument))
        if function == "Fn::Select":
            index, items = argument
            return self.resolve(stack, items)[int(index)]
        if function == "Fn::Split":
            separator, text = argument
            return str(self.resolve(stack, text)).split(separator)
        raise NotImplementedError(f"{stack}: {function} is not resolved by the test deployment")

    def _export(self, name: str) -> Any:
        for stack, template in self.templates.items():
            for output in template.get("Outputs", {}).values():
                if self.resolve(stack, output.get("Export", {}).get("Name")) == name:
                    return self.resolve(stack, output["Value"])
        raise KeyError(f"no stack exports {name}")

    def _attributes(self, stack: str, logical_id: str) -> dict[str, Any]:
        key = (stack, logical_id)
        if key not in self._created:
            self._created[key] = self._create(stack, logical_id)
        return self._created[key]

    # --- creating resources in moto -----------------------------------------------------------------------

    def _create(self, stack: str, logical_id: str) -> dict[str, Any]:
        resource = self.resource(stack, logical_id)
        kind, props = resource["Type"], resource.get("Properties", {})
        fake_id = hashlib.sha256(f"{stack}/{logical_id}".encode()).hexdigest()[:17]
        if kind == "AWS::IAM::Role":
            name = self.resolve(stack, props.get("RoleName")) or logical_id[:64]
            trust = json.dumps(self.resolve(stack, props["AssumeRolePolicyDocument"]))
            arn = boto3.client("iam").create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]["Arn"]
            return {"Ref": name, "Arn": arn}
        if kind == "AWS::KMS::Key":
            key = boto3.client("kms").create_key(Description=logical_id)["KeyMetadata"]
            return {"Ref": key["KeyId"], "Arn": key["Arn"]}
        if kind == "AWS::SNS::Topic":
            arn = boto3.client("sns").create_topic(Name=f"{stack}-{logical_id}")["TopicArn"]
            return {"Ref": arn, "TopicArn": arn, "TopicName": arn.rsplit(":", 1)[1]}
        if kind in ("AWS::DynamoDB::GlobalTable", "AWS::DynamoDB::Table"):
            name = self.resolve(stack, props.get("TableName")) or f"{stack}-{logical_id}"
            boto3.client("dynamodb").create_table(
                TableName=name,
                KeySchema=props["KeySchema"],
                AttributeDefinitions=props["AttributeDefinitions"],
                BillingMode="PAY_PER_REQUEST",
            )
            return {"Ref": name, "Arn": f"arn:aws:dynamodb:{REGION}:{ACCOUNT}:table/{name}"}
        if kind == "AWS::S3::Bucket":
            name = self.resolve(stack, props.get("BucketName")) or f"{stack}-{logical_id}".lower()
            s3 = boto3.client("s3")
            s3.create_bucket(Bucket=name)
            if props.get("VersioningConfiguration", {}).get("Status") == "Enabled":
                s3.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
            return {"Ref": name, "Arn": f"arn:aws:s3:::{name}"}
        if kind == "AWS::EC2::Subnet":
            return {"Ref": f"subnet-{fake_id}", "SubnetId": f"subnet-{fake_id}"}
        if kind == "AWS::EC2::SecurityGroup":
            return {"Ref": f"sg-{fake_id}", "GroupId": f"sg-{fake_id}"}
        if kind == "AWS::Scheduler::ScheduleGroup":
            name = self.resolve(stack, props["Name"])
            arn = boto3.client("scheduler").create_schedule_group(Name=name)["ScheduleGroupArn"]
            return {"Ref": name, "Arn": arn}
        if kind == "AWS::Lambda::Function":
            return self._create_function(stack, logical_id, props)
        if kind == "AWS::StepFunctions::StateMachine":
            return self._create_state_machine(stack, logical_id, props)
        raise NotImplementedError(f"{stack}/{logical_id}: {kind} is not created by the test deployment")

    def _create_function(self, stack: str, logical_id: str, props: dict[str, Any]) -> dict[str, Any]:
        name = self.resolve(stack, props.get("FunctionName")) or logical_id
        environment = {
            k: str(self.resolve(stack, v)) for k, v in props.get("Environment", {}).get("Variables", {}).items()
        }
        arn = boto3.client("lambda").create_function(
            FunctionName=name,
            Runtime="python3.12",
            Role=self.resolve(stack, props["Role"]),
            Handler=props["Handler"],
            Code={"ZipFile": b"code is dispatched in-process"},
        )["FunctionArn"]
        code = self.outdir / f"asset.{props['Code']['S3Key'].removesuffix('.zip')}"
        self.functions[logical_id] = Function(logical_id, name, arn, code, environment)
        return {"Ref": name, "Arn": arn}

    def _create_state_machine(self, stack: str, logical_id: str, props: dict[str, Any]) -> dict[str, Any]:
        asset = self.outdir / f"asset.{props['DefinitionS3Location']['Key']}"
        definition = asset.read_text()
        substitutions = {k: str(self.resolve(stack, v)) for k, v in props.get("DefinitionSubstitutions", {}).items()}
        missing = set(re.findall(r"\$\{(\w+)\}", definition)) - set(substitutions)
        assert not missing, f"the state machine's definition names substitutions the stack does not give: {missing}"
        definition = re.sub(r"\$\{(\w+)\}", lambda m: substitutions[m.group(1)], definition)
        arn = boto3.client("stepfunctions").create_state_machine(
            name=logical_id, definition=definition, roleArn=self.resolve(stack, props["RoleArn"])
        )["stateMachineArn"]
        return {"Ref": arn, "Arn": arn, "Name": logical_id}

    # --- the running system -------------------------------------------------------------------------------

    def function(self, folder: str) -> Function:
        """A pipeline function by its folder under functions/ (the asset holds that folder's app.py)."""
        source = (Path(__file__).resolve().parents[2] / "functions" / folder / "app.py").read_bytes()
        found = [f for f in self.functions.values() if (f.code / "app.py").read_bytes() == source]
        assert len(found) == 1, f"{folder}: {len(found)} deployed functions run its code"
        return found[0]

    def dispatch(self, function_name: str, payload: bytes) -> tuple[bytes, bool]:
        """Run a function's handler as Lambda would: its environment, an error reported by class name."""
        name = function_name.rsplit(":", 1)[-1]
        function = next(f for f in self.functions.values() if name in (f.name, f.arn))
        with self._lock, _environment(function.environment):
            try:
                return json.dumps(function.handler()(json.loads(payload), FakeContext())).encode(), False
            except Exception as exc:  # surfaced to the caller as a function error, as Lambda does
                error = {
                    "errorType": type(exc).__name__,
                    "errorMessage": str(exc),
                    "stackTrace": traceback.format_exc().splitlines()[-8:],
                }
                return json.dumps(error).encode(), True

    def deliver(self, event: dict[str, Any], rule_prefix: str) -> list[dict[str, Any]]:
        """EventBridge: the synthesized rule whose id starts with ``rule_prefix`` must match the event; its
        Lambda targets are invoked with it. Returns their answers."""
        from moto.events.models import EventPattern

        rules = [
            (stack, rule)
            for stack, template in self.templates.items()
            for logical_id, rule in template["Resources"].items()
            if rule["Type"] == "AWS::Events::Rule" and logical_id.startswith(rule_prefix)
        ]
        assert len(rules) == 1, f"{rule_prefix}: {len(rules)} rules"
        stack, rule = rules[0]
        pattern = EventPattern.load(json.dumps(self.resolve(stack, rule["Properties"]["EventPattern"])))
        assert pattern.matches_event(event), "the rule would not deliver this event"
        answers = []
        for target in rule["Properties"]["Targets"]:
            arn = self.resolve(stack, target["Arn"])
            response = boto3.client("lambda").invoke(FunctionName=arn, Payload=json.dumps(event).encode())
            body = json.loads(response["Payload"].read())
            assert "FunctionError" not in response, body
            answers.append(body)
        return answers

    @property
    def state_machine_arn(self) -> str:
        (arn,) = [
            attributes["Arn"]
            for (stack, logical_id), attributes in self._created.items()
            if self.resource(stack, logical_id)["Type"] == "AWS::StepFunctions::StateMachine"
        ]
        return str(arn)


@contextlib.contextmanager
def _environment(variables: dict[str, str]) -> Iterator[None]:
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def deploy(outdir: Path) -> Deployed:
    """Create the stacks' resources a run uses: every bucket, every pipeline function (and through them
    every role, key, topic and table they reach) and the state machine."""
    templates = {
        path.name.removesuffix(".template.json"): json.loads(path.read_text())
        for path in outdir.glob("*.template.json")
    }
    deployed = Deployed(templates, outdir)
    for stack, template in templates.items():
        for logical_id, resource in template["Resources"].items():
            pipeline_function = resource.get("Properties", {}).get("Handler") == "app.handler"
            if resource["Type"] in ("AWS::S3::Bucket", "AWS::StepFunctions::StateMachine") or pipeline_function:
                deployed._attributes(stack, logical_id)
    return deployed


class Pipeline:
    """The deployed stacks and the twin, with what a platform team does and sees."""

    def __init__(self, deployed: Deployed, twin: SageMakerTwin) -> None:
        self.deployed = deployed
        self.twin = twin
        self.s3 = boto3.client("s3")
        self.sagemaker = boto3.client("sagemaker")
        self.sfn = boto3.client("stepfunctions")
        env = deployed.function("admit_run").environment
        self.data = env["TRAINFORGE_DATA_URI"].removeprefix("s3://")
        self.artifacts = env["TRAINFORGE_ARTIFACTS_URI"].removeprefix("s3://")
        self.environment = env

    def upload(self, key: str, body: str) -> str:
        """Put an object and deliver its Object Created event through the stack's rules."""
        version = self.s3.put_object(Bucket=self.data, Key=key, Body=body.encode())["VersionId"]
        event = s3_event(self.data, key, version)
        self.deployed.deliver(event, "AdmitRuns")
        return version

    def executions(self) -> dict[str, dict[str, Any]]:
        listed = self.sfn.list_executions(stateMachineArn=self.deployed.state_machine_arn)["executions"]
        return {e["executionArn"]: e for e in listed}

    def run(self, spec_text: str, data: str, timeout: float = 600) -> dict[str, Any]:
        """Upload the data and the spec; the execution that upload started, once it ended."""
        earlier = self.executions()
        self.s3.put_object(Bucket=self.data, Key="datasets/support/train.jsonl", Body=data.encode())
        self.upload("jobs/support.yaml", spec_text)
        (execution,) = [e for arn, e in self.executions().items() if arn not in earlier]
        deadline = time.monotonic() + timeout
        while (described := self.sfn.describe_execution(executionArn=execution["executionArn"]))["status"] == "RUNNING":
            assert time.monotonic() < deadline, "the execution did not finish"
            time.sleep(0.5)
        history = self.sfn.get_execution_history(executionArn=execution["executionArn"], maxResults=1000)["events"]
        described["path"] = [e["stateEnteredEventDetails"]["name"] for e in history if "stateEnteredEventDetails" in e]
        described["run_id"] = execution["name"]
        return described

    def artifact(self, run_id: str, name: str) -> Any:
        return json.loads(self.s3.get_object(Bucket=self.artifacts, Key=f"runs/{run_id}/{name}")["Body"].read())

    def training_job(self, run_id: str) -> dict[str, Any]:
        return self.sagemaker.describe_training_job(TrainingJobName=f"{run_id}-0")
