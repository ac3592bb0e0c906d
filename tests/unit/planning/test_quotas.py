"""The endpoint quota a deployment needs: blue/green updates hold the old fleet and the new one at once,
and the rollout policy decides how many variants each has. The variant counts are held to what
``serving/rollout.py`` actually does, deployment after deployment."""

from __future__ import annotations

import pytest

from tests.unit.planning.shapes import spec
from trainforge.planning.quotas import SERVING_VARIANTS, STAGED_VARIANTS, endpoint_instances, needed_quotas
from trainforge.serving.rollout import Variant, release, stage
from trainforge.spec import RolloutSpec


def _endpoint_hint(deploy: str):
    (hint,) = [h for h in needed_quotas(spec(deploy=deploy), "ml.g5.xlarge") if h.name.endswith("endpoint usage")]
    return hint


@pytest.mark.parametrize(
    ("deploy", "needed"),
    [
        ("{instance_type: ml.g5.xlarge}", 3),  # replace: [v1] -> staged [v1, v2]
        ("{instance_type: ml.g5.xlarge, instance_count: 2}", 6),
        ("{instance_type: ml.g5.xlarge, rollout: {policy: ab}}", 4),  # [v1, v2] -> staged [v2, v3]
        ("{instance_type: ml.g5.xlarge, rollout: {policy: shadow}}", 4),
        ("{instance_type: ml.g5.xlarge, instance_count: 2, rollout: {policy: canary}}", 8),
    ],
)
def test_the_endpoint_quota_covers_the_old_fleet_and_the_new_during_an_update(deploy, needed):
    hint = _endpoint_hint(deploy)
    assert (hint.name, hint.needed) == ("ml.g5.xlarge for endpoint usage", needed)


def test_no_endpoint_no_endpoint_quota():
    names = [h.name for h in needed_quotas(spec(deploy="{target: bedrock_import}"), "ml.g5.xlarge")]
    assert not [name for name in names if name.endswith("endpoint usage")]


@pytest.mark.parametrize("policy", sorted(SERVING_VARIANTS))
def test_the_variant_counts_are_what_the_rollout_does(policy):
    rollout = RolloutSpec(policy=policy)
    record = None
    for version in range(1, 5):  # past the first deployments, into the steady state
        candidate = Variant(name=f"v{version}", version=str(version), run_id=f"run-{version}", model_uri="s3://m/")
        record = stage(record, candidate, "support", 0, "ml.g5.xlarge")
        if version > 1:
            assert len(record.variants) == STAGED_VARIANTS
        record, _ = release(record, rollout)
    assert len(record.variants) == SERVING_VARIANTS[policy]
    assert endpoint_instances(spec(deploy=f"{{rollout: {{policy: {policy}}}, instance_count: 2}}").deploy) == 2 * (
        SERVING_VARIANTS[policy] + STAGED_VARIANTS
    )


def test_a_tuning_runs_parallel_trials_each_hold_the_training_quota():
    job = spec(
        compute="{instance_type: ml.g5.2xlarge, instance_count: 2, spot: false}", tuning="{max_jobs: 8, parallel: 3}"
    )
    (hint,) = [h for h in needed_quotas(job, "ml.g5.xlarge") if h.name.endswith("training job usage")]
    assert (hint.name, hint.needed) == ("ml.g5.2xlarge for training job usage", 6)
