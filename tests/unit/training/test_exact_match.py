"""Selecting by exact match (``training.selection``): what the validation pass counts, and the best step a run
selecting by it ends with."""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainforge.training.entrypoint import train_from_contract
from trainforge.training.loop import Validation
from trainforge.training.objectives import LanguageModeling
from trainforge.training.packing import pack
from trainforge.training.selection import improves, objective
from trainforge.training.tokenize import IGNORE, Example

PROMPTS = ["the capital of france is", "reset my password", "where is my order", "hello how are", "one two", "sky"]


class Killed(Exception):
    """The run killed at a scripted validation, as a spot reclaim would."""


def script_validations(monkeypatch, script: list[tuple[float, float | None] | None]) -> None:
    """The loop's validations replaced by ``script``'s (loss, exact match), in order (the training steps stay
    real); a None raises :class:`Killed` there."""

    def evaluate(*args):
        scripted = script.pop(0)
        if scripted is None:
            raise Killed
        return Validation(*scripted)

    monkeypatch.setattr("trainforge.training.loop.evaluate", evaluate)


def test_exact_match_counts_the_examples_greedy_decoding_reproduces(tiny_model_dir):
    """Answers made of the model's own greedy continuation count; the same answers with one token changed
    (the last: every token before it is still the greedy one) do not. Six examples packed into one row, so the
    count is per document, not per row."""
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    examples = []
    for index, text in enumerate(PROMPTS):
        prompt = tokenizer(text).input_ids
        ids = torch.tensor([prompt])
        with torch.no_grad():
            generated = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=3, do_sample=False)
        answer = generated[0, len(prompt) :].tolist()
        if index % 2:
            answer[-1] = (answer[-1] + 1) % model.config.vocab_size
        examples.append(Example(prompt + answer, [IGNORE] * len(prompt) + answer))
    sequences, _ = pack(examples, 128)
    assert len(sequences) == 1
    validation = LanguageModeling(sequences, 128, tokenizer.pad_token_id or 0)
    batch = validation.batch([0])
    with torch.no_grad():
        loss, hits, documents = validation.exact_match_sums(model, batch)
        expected_loss = float(validation.loss_sum(model, batch))
    assert (hits, documents) == (3, 6)
    assert loss == pytest.approx(expected_loss)


def test_exact_match_wins_and_ties_go_to_the_lower_loss():
    assert improves("exact_match", 2.0, 0.6, 1.0, 0.5)  # a higher exact match at a higher loss
    assert not improves("exact_match", 0.5, 0.4, 1.0, 0.5)  # a lower loss does not make up for fewer answers
    assert improves("exact_match", 0.9, 0.5, 1.0, 0.5) and not improves("exact_match", 1.0, 0.5, 1.0, 0.5)
    assert improves("exact_match", 3.0, 0.0, float("inf"), None)  # the first validation
    assert not improves("eval_loss", 2.0, 0.9, 1.0, 0.1)  # selecting by loss ignores exact match
    assert objective("exact_match", 2.0, 0.75) == 0.25 and objective("eval_loss", 2.0, 0.75) == 2.0
    with pytest.raises(ValueError, match="measured none"):
        objective("exact_match", 2.0, None)


def test_a_run_selecting_by_exact_match_ends_with_its_best_exact_match_step(opt_ml, monkeypatch):
    """Scripted validations (the training steps are real): exact match peaks at steps 4-5 while the loss is
    lowest at step 6. Selecting by exact match ends with step 5 (step 4's exact match at a lower loss); by loss
    the run would end with its last step, and nothing would be restored."""
    script = [(1.0, 0.2), (0.9, 0.4), (0.95, 0.4), (1.2, 0.6), (1.1, 0.6), (0.8, 0.5)]
    script_validations(monkeypatch, list(script))
    root = opt_ml(max_steps=6, eval_every=1, checkpoint_every=100, selection_metric="exact_match")
    summary = train_from_contract(root)
    records = [json.loads(line) for line in (root / "checkpoints/metrics.jsonl").read_text().splitlines()]
    assert [r["eval_exact_match"] for r in records if "eval_loss" in r] == [exact for _, exact in script]
    assert summary["restored_step"] == 5 and summary["best_exact_match"] == 0.6
    assert summary["best_eval_loss"] == pytest.approx(1.1)
    assert {"event": "restored_best", "step": 5, "validation_loss": 1.1} in records


def test_patience_waits_while_the_loss_falls_though_exact_match_stalls(opt_ml, monkeypatch):
    """Scripted validations: exact match is best at step 1 and stalls while the loss falls to step 4 (a task
    not yet learnt); patience 2 counts only steps 5 and 6, which improve neither, and stops at 6. Counting
    exact match alone, the run would stop at step 3; it still ends with step 1, its best exact match."""
    script_validations(
        monkeypatch, [(1.0, 0.5), (0.9, 0.4), (0.8, 0.4), (0.7, 0.3), (0.75, 0.3), (0.72, 0.3), (0.5, 0.9), (0.4, 0.9)]
    )
    root = opt_ml(
        max_steps=8, eval_every=1, checkpoint_every=100, early_stopping_patience=2, selection_metric="exact_match"
    )
    summary = train_from_contract(root)
    assert summary["steps"] == 6 and summary["stopped_early"]
    assert summary["restored_step"] == 1 and summary["best_exact_match"] == 0.5


def test_a_checkpoint_from_before_the_lowest_loss_keeps_the_patience_it_spent(opt_ml, monkeypatch):
    """Killed at step 3's validation, one evaluation without improvement spent (step 2), the run resumes from a
    checkpoint written before ``lowest_eval_loss`` existed. Read back as its best loss (1.0), step 3's 1.2 is
    no new low: patience 2 is spent and the run stops there. Read back as infinite, step 3 would reset it and
    the run would train on to step 4."""

    script_validations(monkeypatch, [(1.0, None), (1.1, None), None, (1.2, None), (1.3, None)])
    root = opt_ml(max_steps=4, eval_every=1, checkpoint_every=1, early_stopping_patience=2)
    with pytest.raises(Killed):
        train_from_contract(root)
    saved_path = root / "checkpoints" / "step-00000002" / "state.pt"
    saved = torch.load(saved_path, weights_only=False)
    del saved["state"]["lowest_eval_loss"]
    torch.save(saved, saved_path)
    summary = train_from_contract(root)
    assert summary["steps"] == 3 and summary["stopped_early"]


def test_a_real_run_selecting_by_exact_match_reports_it_at_each_validation(opt_ml):
    root = opt_ml(max_steps=4, eval_every=2, selection_metric="exact_match")
    summary = train_from_contract(root)
    records = [json.loads(line) for line in (root / "checkpoints/metrics.jsonl").read_text().splitlines()]
    exact = [r["eval_exact_match"] for r in records if "eval_loss" in r]
    assert len(exact) == 2 and all(0.0 <= value <= 1.0 for value in exact)
    assert summary["best_exact_match"] in exact


def test_a_resumed_trial_reports_the_best_validation_from_before_the_kill(opt_ml, monkeypatch):
    """A tuning trial prints, after each validation, the objective of its best validation so far (AMT's early
    stopping reads it). Killed after step 3 and resumed, the trial's best is still step 2's (exact match 0.6),
    read back from the checkpoint: the resumed validations, all worse, do not replace it (and the third of
    them without improvement, counting step 3's, ends the trial early at step 5)."""

    script_validations(monkeypatch, [(1.0, 0.2), (0.9, 0.6), (1.1, 0.3), None, (1.2, 0.4), (1.3, 0.4)])
    root = opt_ml(max_steps=6, eval_every=1, checkpoint_every=1, selection_metric="exact_match", max_forgetting=0.5)
    with pytest.raises(Killed):
        train_from_contract(root)
    train_from_contract(root)
    records = [json.loads(line) for line in (root / "checkpoints/metrics.jsonl").read_text().splitlines()]
    progress = [(r["step"], r["tuning_objective"]) for r in records if r.get("event") == "objective_progress"]
    assert progress == [(1, 0.8), (2, 0.4), (3, 0.4), (4, 0.4), (5, 0.4)]
