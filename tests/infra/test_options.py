"""Context, read once in infra/app.py: what a deployment may opt into."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk.assertions import Template

from infra.app import DEFAULT_INSTANCE_TYPES, Options
from infra.constructs.pipeline_function import PipelineFunction


def options(**context: object) -> Options:
    return Options.from_context(context.get)


def test_defaults_reserve_no_concurrency_and_build_the_neuron_image_for_the_default_trainium_types():
    default = options()
    assert default.reserved_concurrency is None
    assert default.neuron_image and default.allowed_instance_types == DEFAULT_INSTANCE_TYPES.split(",")


@pytest.mark.parametrize(("value", "expected"), [("5", 5), (3, 3), ("", None), (None, None)])
def test_reserved_concurrency_is_opt_in(value, expected):
    assert options(reserved_concurrency=value).reserved_concurrency == expected


@pytest.mark.parametrize("value", ["0", "-1", "ten"])
def test_reserved_concurrency_must_be_a_positive_integer(value):
    with pytest.raises(ValueError):
        options(reserved_concurrency=value)


def test_the_reservation_reaches_each_function():
    # Given a function built with the reservation the context asked for
    stack = cdk.Stack(cdk.App(), "Functions")
    vpc = ec2.Vpc(
        stack,
        "Vpc",
        nat_gateways=0,
        subnet_configuration=[ec2.SubnetConfiguration(name="isolated", subnet_type=ec2.SubnetType.PRIVATE_ISOLATED)],
    )
    PipelineFunction(
        stack,
        "AdmitRun",
        name="admit_run",
        layer=lambda_.LayerVersion.from_layer_version_arn(
            stack, "Layer", "arn:aws:lambda:us-east-1:123456789012:layer:l:1"
        ),
        key=kms.Key(stack, "Key"),
        vpc=vpc,
        security_group=ec2.SecurityGroup(stack, "Group", vpc=vpc),
        environment={},
        reserved_concurrency=options(reserved_concurrency="5").reserved_concurrency,
    )
    # Then the function reserves exactly that
    Template.from_stack(stack).has_resource_properties("AWS::Lambda::Function", {"ReservedConcurrentExecutions": 5})


@pytest.mark.parametrize("value", [False, "false", "False"])
def test_without_the_neuron_image_no_trainium_type_is_allowed(value):
    chosen = options(neuron_image=value)
    assert not chosen.neuron_image
    assert chosen.allowed_instance_types == [t for t in DEFAULT_INSTANCE_TYPES.split(",") if not t.startswith("ml.trn")]


def test_the_neuron_image_is_built_only_when_a_trainium_type_is_allowed():
    assert not options(allowed_instance_types="ml.g5.*,ml.m5.*").neuron_image
    assert options(allowed_instance_types="ml.trn1.*").neuron_image
    with pytest.raises(ValueError, match="no SageMaker instance type"):
        options(allowed_instance_types="ml.trn1.*", neuron_image="false")
    with pytest.raises(ValueError, match="true or false"):
        options(neuron_image="yes")
