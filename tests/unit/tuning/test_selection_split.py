"""A tuning trial is chosen on a slice of the training side, never on the run's held-out examples: those
score the chosen model, and a search that saw them would report optimistic figures."""

from __future__ import annotations

import json

from transformers import AutoTokenizer

from tests.conftest import chat
from trainforge.contracts import DatasetReport
from trainforge.data.split import selection_split, split_records
from trainforge.pipeline.steps import training_hyperparameters
from trainforge.spec import parse_spec
from trainforge.training.config import TrainConfig
from trainforge.training.data_setup import build_objectives

RECORDS = [chat(f"question {i}", f"answer {i}") for i in range(200)]


def test_a_trials_selection_slice_is_disjoint_from_the_runs_held_out_examples():
    train, held_out = split_records(RECORDS, "chat", 7, 0.25)
    rest, selection = selection_split(train, "chat", 7, 0.2)
    as_keys = lambda records: {json.dumps(r, sort_keys=True) for r in records}  # noqa: E731
    assert selection and not as_keys(selection) & as_keys(held_out)
    assert as_keys(rest) | as_keys(selection) == as_keys(train) and not as_keys(rest) & as_keys(selection)
    assert 0.1 < len(selection) / len(train) < 0.3  # the seeded hash mask: about the asked share


def test_a_trial_trains_and_scores_on_its_slice(tmp_path, tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    folder = tmp_path / "train"
    folder.mkdir()
    (folder / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in RECORDS))
    run = build_objectives(tokenizer, folder, None, TrainConfig(validation_fraction=0.25, split_seed=7))
    trial = build_objectives(
        tokenizer, folder, None, TrainConfig(validation_fraction=0.25, split_seed=7, selection_fraction=0.2)
    )
    train, _ = split_records(RECORDS, "chat", 7, 0.25)
    rest, selection = selection_split(train, "chat", 7, 0.2)
    assert run.stats["examples"] == len(train)
    assert (trial.stats["examples"], trial.stats["validation_examples"]) == (len(rest), len(selection))


def test_only_a_tuning_runs_trials_get_a_selection_slice():
    report = DatasetReport(
        ok=True, files=[], format="chat", format_detected=True, bytes_read=0, records=0, valid_records=0, errors=[]
    )
    body = "name: cars\nbase_model: lite\ndata: {train: datasets/cars/train.jsonl}\n"
    single = TrainConfig.from_hyperparameters(training_hyperparameters(parse_spec(body), report, "lite", "0" * 64))
    tuned = TrainConfig.from_hyperparameters(
        training_hyperparameters(parse_spec(body + "tuning: {max_jobs: 2}"), report, "lite", "0" * 64)
    )
    assert single.selection_fraction == 0.0 and tuned.selection_fraction == 0.2


def test_a_few_records_still_leave_a_trial_a_selection_slice():
    # at 5% of six records the hash mask selects none (seed 7): the trial would be scored on its training loss
    few = RECORDS[:6]
    assert not split_records(few, "chat", 8, 0.05)[1]
    rest, selection = selection_split(few, "chat", 7, 0.05)
    assert len(selection) == 1 and len(rest) == 5


def test_duplicates_alone_stay_on_one_side():
    same = [chat("question", "answer")] * 4
    assert selection_split(same, "chat", 7, 0.05) == (same, [])
