"""cdk.json carries the feature flags AWS recommends for the pinned aws-cdk-lib, and none of them moves a
stateful resource: the logical ids of the key, the buckets and the table are pinned here."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import aws_cdk

from tests.conftest import cdk_json_context
from tests.infra.policies import resources

#: flag -> (the value cdk.json keeps, why it differs from the recommendation); docs/security.md says the same
DEVIATIONS = {
    "@aws-cdk/core:defaultCrossStackReferences": (
        "strong",
        "weak references drop the data stack's exports, which deployed training and pipeline stacks import "
        "(the update fails), and give up CloudFormation's refusal to delete the key or table while in use",
    ),
}
#: released logical ids: a new one means CloudFormation replaces (and, retained, orphans) the resource
STATEFUL = {
    "Key961B73FD": "AWS::KMS::Key",
    "AccessLogs8B620ECA": "AWS::S3::Bucket",
    "DataBucketE6B0FAA8": "AWS::S3::Bucket",
    "ArtifactsBucket88671897": "AWS::S3::Bucket",
    "RunsE45A2291": "AWS::DynamoDB::GlobalTable",
}


def recommended_flags() -> dict:
    """The recommended-feature-flags.json that the aws-cdk-lib package ships in its JS tarball."""
    (tarball,) = (Path(aws_cdk.__file__).parent / "_jsii").glob("aws-cdk-lib@*.jsii.tgz")
    with tarfile.open(tarball) as archive:
        member = archive.extractfile("package/recommended-feature-flags.json")
        assert member is not None
        return json.load(member)


def test_cdk_json_sets_every_recommended_flag_and_explains_each_deviation():
    flags = {k: v for k, v in cdk_json_context().items() if k.startswith("@aws-cdk")}
    recommended = recommended_flags()
    assert set(flags) == set(recommended), (
        "this aws-cdk-lib recommends other flags: review each new one for replaced stateful resources, then set "
        "it in cdk.json (or keep it off in DEVIATIONS and docs/security.md, with the reason)"
    )
    assert {k: v for k, v in flags.items() if v != recommended[k]} == {k: v for k, (v, _) in DEVIATIONS.items()}
    security = (Path(__file__).parents[2] / "docs" / "security.md").read_text()
    assert all(flag in security for flag in DEVIATIONS)


def test_stateful_resources_keep_their_logical_ids_and_are_retained(synthesized):
    found = {
        logical_id: resource
        for kind in set(STATEFUL.values())
        for logical_id, resource in resources(synthesized, "data", kind).items()
    }
    assert {logical_id: r["Type"] for logical_id, r in found.items()} == STATEFUL
    assert all(r["DeletionPolicy"] == "Retain" and r["UpdateReplacePolicy"] == "Retain" for r in found.values())
