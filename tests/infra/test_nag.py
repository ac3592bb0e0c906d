"""cdk-nag: AwsSolutions, HIPAA.Security, NIST.800.53.R5 and Serverless report no unacknowledged finding,
and every acknowledgement is counted and reasoned."""

from __future__ import annotations

import pytest

from infra import nag

#: Raising this number is a security review: say in the commit which finding was accepted and why.
ACKNOWLEDGEMENTS = 55


@pytest.mark.parametrize("stack", ["data", "training", "pipeline"])
@pytest.mark.parametrize("pack", nag.PACKS, ids=lambda p: p.__name__)
def test_no_unacknowledged_findings(synthesized, stack, pack):
    report = pack(synthesized["app"]).validate_scope(synthesized[stack])
    assert [v.rule_name for v in report.violations] == []


def test_acknowledgements_are_counted_and_reasoned(synthesized):
    applied = synthesized["acknowledgements"]
    assert len(applied) == ACKNOWLEDGEMENTS
    assert all(len(ack.reason) > 40 for ack in applied)
    assert {ack.rule.split("[")[0] for ack in applied} <= {
        "AwsSolutions-IAM4",
        "AwsSolutions-IAM5",
        "HIPAA.Security-IAMNoInlinePolicy",
        "NIST.800.53.R5-IAMNoInlinePolicy",
        "HIPAA.Security-S3BucketReplicationEnabled",
        "NIST.800.53.R5-S3BucketReplicationEnabled",
        "HIPAA.Security-S3DefaultEncryptionKMS",
        "NIST.800.53.R5-S3DefaultEncryptionKMS",
        "Serverless-SQSRedrivePolicy",
    }
