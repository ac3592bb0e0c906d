"""Which trial a study keeps: the best within the forgetting budget, never a lower loss that forgot too
much; none feasible fails the run saying so. Trials are told to a real (in-memory) Optuna study as the
local tuner tells them."""

from __future__ import annotations

import optuna
import pytest

from trainforge.spec import parse_spec
from trainforge.tuning.local import InfeasibleStudy, best_feasible, summarize
from trainforge.tuning.space import amt_ranges, search_space

BUDGET = 0.05


def study_of(results: list[tuple[float, float] | None]) -> list:
    """(eval loss, forgetting) per trial, or None for a pruned one."""
    study = optuna.create_study(direction="minimize")
    for index, result in enumerate(results):
        trial = study.ask({"learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True)})
        trial.set_user_attr("key", f"k{index}")
        if result is None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        loss, forgetting = result
        trial.set_user_attr("forgetting", forgetting)
        trial.set_constraint("forgetting", forgetting - BUDGET)
        study.tell(trial, loss)
    return [summarize(t, BUDGET) for t in study.get_trials()]


def test_the_lowest_loss_that_forgot_too_much_is_not_chosen():
    trials = study_of([(1.10, 0.01), (0.80, 0.12), None, (0.95, 0.049)])
    assert [t.state for t in trials] == ["complete", "infeasible", "pruned", "complete"]
    best = best_feasible(trials, BUDGET)
    assert best.number == 3 and best.objective == pytest.approx(0.95)


def test_trials_tied_on_exact_match_go_to_the_lower_loss():
    """Told as the local tuner tells them: the objective 1 - exact match, the loss as the trial's attribute.
    Trials 0 and 2 answer the same share of the selection slice; trial 2's loss is lower."""
    study = optuna.create_study(direction="minimize")
    for index, (error, loss) in enumerate([(0.25, 0.60), (0.40, 0.30), (0.25, 0.45)]):
        trial = study.ask({"learning_rate": optuna.distributions.FloatDistribution(1e-5, 1e-2, log=True)})
        trial.set_user_attr("key", f"k{index}")
        trial.set_user_attr("forgetting", 0.0)
        trial.set_user_attr("eval_loss", loss)
        trial.set_constraint("forgetting", -BUDGET)
        study.tell(trial, error)
    trials = [summarize(t, BUDGET, "exact_match") for t in study.get_trials()]
    assert best_feasible(trials, BUDGET).number == 2


def test_no_feasible_trial_fails_naming_each_trials_forgetting():
    trials = study_of([(0.9, 0.08), (0.7, 0.20), None])
    with pytest.raises(InfeasibleStudy, match=r"no feasible trial.*5\.0%.*trial 0: \+8\.0%, trial 1: \+20\.0%"):
        best_feasible(trials, BUDGET)


def test_the_spec_ranges_replace_the_defaults_and_map_to_amt_ranges():
    tuning = parse_spec(
        "name: t\nbase_model: tiny\ndata: {train: d.jsonl}\n"
        "tuning: {ranges: {learning_rate: [0.0001, 0.01], max_steps: [10, 40], lora_targets: [attention]}}"
    ).tuning
    settings = {"learning_rate": 5e-4, "batch_size": 8, "epochs": 2.0, "max_steps": None}
    space = search_space(settings, tuning.ranges, adapter=True)
    assert "epochs" not in space and (space["max_steps"].low, space["max_steps"].high) == (10, 40)
    assert space["learning_rate"].high == 0.01 and space["lora_targets"].choices == ("attention",)
    assert "lora_rank" not in search_space(settings, {}, adapter=False)
    ranges = amt_ranges(space)
    assert {"Name": "lora_targets", "Values": ["attention"]} in ranges["CategoricalParameterRanges"]
    lr = next(r for r in ranges["ContinuousParameterRanges"] if r["Name"] == "learning_rate")
    assert lr["ScalingType"] == "Logarithmic" and lr["MinValue"] == "0.0001"
    decay = next(r for r in ranges["ContinuousParameterRanges"] if r["Name"] == "weight_decay")
    assert decay["ScalingType"] == "Linear"  # a log scale needs a positive low bound


def test_replay_is_a_lever_the_tuner_can_pull():
    settings = {"learning_rate": 5e-4, "batch_size": 8, "epochs": 2.0, "max_steps": None}
    replay = search_space(settings, {}, adapter=False)["replay_fraction"]
    assert (replay.low, replay.high) == (0.0, 0.3)
    assert search_space({**settings, "replay_fraction": 0.2}, {}, adapter=False)["replay_fraction"].high == 0.4
    assert search_space({**settings, "replay_fraction": 0.4}, {}, adapter=False)["replay_fraction"].high == 0.5
    # where no general text can join the mix, a searched share would be a dimension that changes nothing
    for method, fmt in (("dpo", "preference"), ("full", "speech"), ("lora", "multimodal")):
        assert "replay_fraction" not in search_space({**settings, "method": method, "data_format": fmt}, {}, False)


@pytest.mark.parametrize(
    "body",
    [
        "method: dpo\ndata: {train: d.jsonl, replay_fraction: 0.1}",
        "data: {train: d.jsonl, format: speech, replay_fraction: 0.1}",
        "method: dpo\ndata: {train: d.jsonl}\ntuning: {ranges: {replay_fraction: [0, 0.2]}}",
    ],
)
def test_replay_where_nothing_replays_is_refused_not_ignored(body):
    from trainforge.errors import SpecInvalid

    with pytest.raises(SpecInvalid, match=r"data\.replay_fraction: .* trains on no general text"):
        parse_spec(f"name: t\nbase_model: tiny\n{body}\n")


@pytest.mark.parametrize(
    "body",
    [
        "method: dpo\ndata: {train: d.jsonl}",
        "method: continued_pretraining\ndata: {train: d.jsonl}",
        "data: {train: d.jsonl, format: text}",
        "data: {train: d.jsonl, format: speech}",
    ],
)
def test_exact_match_where_there_are_no_answers_is_refused(body):
    from trainforge.errors import SpecInvalid

    with pytest.raises(SpecInvalid, match=r"tuning.objective: exact_match scores answers, and .* has none"):
        parse_spec(f"name: t\nbase_model: tiny\n{body}\ntuning: {{objective: exact_match}}\n")


def test_exact_match_on_answers_is_what_the_trials_select_by():
    from trainforge.contracts import TrialSummary, objective_label

    spec = parse_spec("name: t\nbase_model: tiny\ndata: {train: d.jsonl}\ntuning: {objective: exact_match}\n")
    assert spec.tuning is not None and spec.tuning.objective == "exact_match"
    trial = TrialSummary(number=0, state="complete", params={}, objective=0.25, metric="exact_match")
    assert objective_label([trial]) == "1 - exact match on the selection slice"
    assert objective_label([trial.model_copy(update={"metric": "eval_loss"})]) == "best eval loss"


@pytest.mark.parametrize(
    ("ranges", "message"),
    [
        ("{dropout: [0, 1]}", "'dropout' cannot be tuned"),
        ("{learning_rate: [0, 0.1]}", "0 < low < high"),
        ("{lora_targets: [mlp]}", "choose among"),
        ("{epochs: [3]}", "two numbers"),
        ("{replay_fraction: [0.1, 0.8]}", "at most 0.5"),
    ],
)
def test_bad_ranges_are_refused_with_the_key_and_why(ranges, message):
    from trainforge.errors import SpecInvalid

    with pytest.raises(SpecInvalid, match=message):
        parse_spec(f"name: t\nbase_model: tiny\ndata: {{train: d.jsonl}}\ntuning: {{ranges: {ranges}}}")
