"""The training benchmark's sides train on the same real-token budget per step, counted at the forward."""

from __future__ import annotations

import random

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from benchmarks.train_sides import Job, Side, hf_trainer, real_tokens, token_budget_groups, trainforge, trl
from tests.conftest import chat
from trainforge.training.tokenize import encode_record

WORDS = [
    "the",
    "order",
    "ships",
    "on",
    "monday",
    "and",
    "the",
    "reset",
    "link",
    "is",
    "in",
    "your",
    "email",
    "paris",
    "is",
    "the",
    "capital",
]


@pytest.fixture(scope="module")
def examples(tiny_model_dir):
    """Chat examples of 20-60 tokens, the spread that makes the sides' batches differ in shape."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    rng = random.Random(0)
    rows = [
        chat(" ".join(rng.choices(WORDS, k=rng.randint(3, 20))), " ".join(rng.choices(WORDS, k=rng.randint(3, 20))))
        for _ in range(300)
    ]
    return tokenizer, [encode_record(tokenizer, row, "chat") for row in rows]


def test_every_side_gets_the_same_real_tokens_per_step_within_one_example(tiny_model_dir, examples):
    tokenizer, encoded = examples
    longest = max(len(e.input_ids) for e in encoded)
    job = Job(seq_len=128, rows=2, steps=4, warmup=0, learning_rate=1e-3)
    sides = {"trainforge": trainforge("fp32"), "trl": trl("fp32"), "hf": hf_trainer("fp32")}
    per_step = {}
    for name, run in sides.items():
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
        meter, _ = Side(name, run)(model, tokenizer, encoded, job)
        assert len(meter.tokens) == job.total_steps and all(s > 0 for s in meter.seconds), name
        per_step[name] = meter.tokens
    for name, tokens in per_step.items():
        for step, count in enumerate(tokens):
            assert job.budget - longest < count <= job.budget, (name, step, count)


def test_real_tokens_reads_each_sides_inputs():
    padded = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])
    assert real_tokens((), {"attention_mask": padded}) == 7
    # TrainForge: two documents (3 and 2 tokens) then 3 padding positions; TRL: the same, flattened
    positions = torch.tensor([[0, 1, 2, 0, 1, 0, 0, 0]])
    assert real_tokens((), {"position_ids": positions, "attention_mask": torch.ones(1, 1, 8, 8)}) == 5
    assert real_tokens((), {"position_ids": positions[:, :5]}) == 5
    assert real_tokens((torch.zeros(2, 3),), {}) == 6


def test_token_budget_groups_hold_every_example_once_within_one_example_of_the_budget():
    rng = random.Random(1)
    lengths = [rng.randint(5, 60) for _ in range(500)]
    groups = token_budget_groups(lengths, 200)
    assert sorted(i for group in groups for i in group) == list(range(500))
    for group in groups[:-1]:  # the last group holds what is left
        assert 200 - 60 < sum(lengths[i] for i in group) <= 200
