"""Rollout policies as pure functions of the endpoint record: staging at no traffic, release under each
policy, promote, rollback, and what each leaves the registry to record."""

from __future__ import annotations

import pytest

from trainforge.errors import UsageError
from trainforge.serving.rollout import (
    EndpointRecord,
    Variant,
    config_name,
    promote,
    release,
    rollback,
    same_variants,
    stage,
    unstage,
)
from trainforge.spec import RolloutSpec


def version(n: int) -> Variant:
    return Variant(name=f"v{n}", version=str(n), run_id=f"run{n}", model_uri=f"file:///runs/run{n}/model")


def served(record: EndpointRecord) -> list[tuple[str, int, bool]]:
    return [(v.name, v.weight, v.shadow) for v in record.variants]


def first(n: int = 1) -> EndpointRecord:
    record, _ = release(stage(None, version(n), "support", 0), RolloutSpec())
    return record


def test_a_first_version_serves_alone_and_becomes_champion():
    staged = stage(None, version(1), "support", 0)
    assert served(staged) == [("v1", 100, False)] and staged.champion is None and staged.staged.name == "v1"
    record = first()
    assert served(record) == [("v1", 100, False)] and record.champion.name == "v1" and record.staged is None


def test_a_new_version_is_staged_at_no_traffic_and_unstaging_restores_the_endpoint():
    record = first()
    staged = stage(record, version(2), "support", 0)
    assert served(staged) == [("v1", 100, False), ("v2", 0, False)] and staged.champion.name == "v1"
    assert served(unstage(staged)) == served(record) and unstage(staged).staged is None
    with pytest.raises(UsageError, match="already deployed"):
        stage(record, version(1), "support", 0)


@pytest.mark.parametrize(
    ("rollout", "layout", "champion", "challenger"),
    [
        (RolloutSpec(policy="replace"), [("v2", 100, False)], "v2", None),
        # a canary keeps the staged layout's variant names (guardrails need them), v1 a standby at 0
        (RolloutSpec(policy="canary"), [("v1", 0, False), ("v2", 100, False)], "v2", None),
        (RolloutSpec(policy="ab", challenger_percent=10), [("v1", 90, False), ("v2", 10, False)], "v1", "v2"),
        (RolloutSpec(policy="shadow", shadow_percent=50), [("v1", 100, False), ("v2", 50, True)], "v1", "v2"),
    ],
)
def test_release_under_each_policy(rollout, layout, champion, challenger):
    record, retired = release(stage(first(), version(2), "support", 0), rollout)
    assert served(record) == layout and retired == []
    assert record.champion.name == champion and (record.challenger.name if record.challenger else None) == challenger
    assert [v.name for v in record.previous] == (["v1"] if champion == "v2" else [])


def test_promote_an_ab_challenger_moves_weights_only_and_rollback_moves_them_back():
    ab, _ = release(stage(first(), version(2), "support", 0), RolloutSpec(policy="ab", challenger_percent=10))
    promoted = promote(ab)
    assert served(promoted) == [("v1", 0, False), ("v2", 100, False)] and same_variants(ab, promoted)
    assert promoted.champion.name == "v2" and promoted.challenger is None and promoted.previous[-1].name == "v1"
    back, out = rollback(promoted)
    assert served(back) == [("v1", 100, False), ("v2", 0, False)] and same_variants(promoted, back)
    assert back.champion.name == "v1" and out.name == "v2" and back.previous == ()


def test_rollback_of_a_challenger_leaves_the_champion_alone():
    ab, _ = release(stage(first(), version(2), "support", 0), RolloutSpec(policy="ab"))
    back, out = rollback(ab)
    assert served(back) == [("v1", 100, False), ("v2", 0, False)] and out.name == "v2" and back.champion.name == "v1"
    shadow, _ = release(stage(first(), version(2), "support", 0), RolloutSpec(policy="shadow"))
    back, out = rollback(shadow)
    assert served(back) == [("v1", 100, False)] and out.name == "v2" and back.challenger is None


def test_promoting_a_shadow_makes_it_the_production_variant():
    shadow, _ = release(stage(first(), version(2), "support", 0), RolloutSpec(policy="shadow"))
    promoted = promote(shadow)
    assert served(promoted) == [("v2", 100, False)] and not same_variants(shadow, promoted)


def test_a_new_version_supersedes_a_challenger_and_rollback_needs_something_to_return_to():
    ab, _ = release(stage(first(), version(2), "support", 0), RolloutSpec(policy="ab"))
    record, retired = release(stage(ab, version(3), "support", 0), RolloutSpec(policy="ab"))
    assert served(record) == [("v1", 90, False), ("v3", 10, False)] and [v.name for v in retired] == ["v2"]
    with pytest.raises(UsageError, match="no earlier version"):
        rollback(first())
    with pytest.raises(UsageError, match="no challenger"):
        promote(first())


def test_a_replaced_champion_is_rolled_back_to_in_a_new_configuration():
    replaced, _ = release(stage(first(), version(2), "support", 0), RolloutSpec())
    back, out = rollback(replaced)
    assert served(back) == [("v1", 100, False)] and out.name == "v2" and not same_variants(replaced, back)


def test_configuration_names_follow_the_layout():
    record = first()
    name = config_name(record)
    assert name.startswith("support-v1-") and len(name) <= 63 and name == config_name(record.model_copy())
    assert config_name(stage(record, version(2), "support", 0)) != name
    assert config_name(stage(record, version(2), "support", 10)) != config_name(stage(record, version(2), "support", 0))
    long = EndpointRecord(name="a" * 40, variants=tuple(version(n) for n in range(1000, 1004)))
    assert len(config_name(long)) <= 63
