"""cdk-nag: AwsSolutions, HIPAA.Security, NIST.800.53.R5 and Serverless report no unacknowledged finding,
and every acknowledgement is counted and reasoned."""

from __future__ import annotations

import pytest

from infra import nag

#: Raising this number is a security review: say in the commit which finding was accepted and why.
ACKNOWLEDGEMENTS = 70


def test_synthesis_with_every_pack_accepts_only_reviewed_findings(synthesized):
    # the session fixture synthesized with the packs attached: an unaccepted finding would have failed it
    packs = synthesized["nag_packs"]
    assert {pack.name for pack in packs} == {"AwsSolutions", "HIPAA.Security", "NIST.800.53.R5", "Serverless"}
    assert all(pack.rejected == [] for pack in packs)
    accepted = {rule: reason for pack in packs for rule, reason in pack.accepted.items()}
    assert all(rule.startswith(("AwsSolutions-IAM4[", "AwsSolutions-IAM5[")) for rule in accepted)
    assert len(nag.ACKNOWLEDGEMENTS) + len(accepted) == ACKNOWLEDGEMENTS
    assert all(len(ack.reason) > 40 for ack in nag.ACKNOWLEDGEMENTS) and all(
        len(reason) > 40 for reason in accepted.values()
    )


def test_a_new_wildcard_is_not_accepted():
    assert nag.reason_for("AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::trainforge-data-1-2/datasets/*]")
    assert nag.reason_for("AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:s3:::trainforge-data-1-2/*]") is None
    assert nag.reason_for("AwsSolutions-IAM5[Action::s3:*]") is None
    assert nag.reason_for("AwsSolutions-IAM5[Resource::arn:aws:cloudwatch:us-east-1:123456789012:alarm:trainforge-*]")
    assert nag.reason_for("AwsSolutions-IAM5[Resource::arn:aws:cloudwatch:us-east-1:123456789012:alarm:*]") is None
    assert nag.reason_for("AwsSolutions-IAM5[Action::iam:*]") is None


@pytest.mark.parametrize(
    "arn",
    [
        "arn:aws:sagemaker:us-east-1:123456789012:training-job/*",
        # `npx cdk synth` without credentials: the account (and perhaps the region) stay references
        "arn:aws:sagemaker:us-east-1:<AWS::AccountId>:training-job/*",
        "arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:/aws/sagemaker/TrainingJobs:*",
        "arn:aws:scheduler:us-east-1:<AWS::AccountId>:schedule/<RetrainSchedules>/*",
    ],
)
def test_reviewed_wildcards_are_accepted_whether_or_not_the_environment_is_known(arn):
    assert nag.reason_for(f"AwsSolutions-IAM5[Resource::{arn}]")


@pytest.mark.parametrize("stack", ["data", "training", "pipeline"])
@pytest.mark.parametrize("pack", nag.PACKS, ids=lambda p: p.__name__)
def test_no_finding_without_a_suffix_is_left(synthesized, stack, pack):
    report = pack(synthesized["app"]).validate_scope(synthesized[stack])
    assert [v.rule_name for v in report.violations if nag.reason_for(v.rule_name) is None] == []
