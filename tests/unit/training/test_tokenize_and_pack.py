"""Tokenization masks and packing."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest
import torch
from transformers import AutoTokenizer

from tests.conftest import chat
from trainforge.training.attention import use_packed_attention
from trainforge.training.packing import collate, pack
from trainforge.training.tokenize import IGNORE, Example, encode_prompt_completion, encode_record


def test_only_assistant_tokens_carry_loss(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    record = {
        "messages": [
            {"role": "system", "content": "be brief"},
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "hi there"},
            {"role": "user", "content": "where is my order"},
            {"role": "assistant", "content": "it shipped"},
        ]
    }
    example = encode_record(tokenizer, record, "chat")
    labelled = tokenizer.decode(
        [t for t, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE]
    )
    assert labelled == "hi there<|im_end|>\nit shipped<|im_end|>\n"
    prompt_side = tokenizer.decode(
        [t for t, label in zip(example.input_ids, example.labels, strict=True) if label == IGNORE]
    )
    assert "be brief" in prompt_side and "where is my order" in prompt_side and "<|im_start|>assistant\n" in prompt_side


def test_zero_weight_assistant_turn_is_not_learned(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    record = {
        "messages": [
            {"role": "user", "content": "a"},
            {"role": "assistant", "content": "skip me", "weight": 0},
            {"role": "user", "content": "b"},
            {"role": "assistant", "content": "learn me"},
        ]
    }
    example = encode_record(tokenizer, record, "chat")
    assert tokenizer.decode(
        [t for t, label in zip(example.input_ids, example.labels, strict=True) if label != IGNORE]
    ).startswith("learn me")


def test_prompt_completion_masks_prompt(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    example = encode_prompt_completion(tokenizer, "hello how are", " you")
    prompt_len = len(tokenizer("hello how are", add_special_tokens=False)["input_ids"])
    assert all(label == IGNORE for label in example.labels[:prompt_len])
    assert example.labels[prompt_len:] == example.input_ids[prompt_len:]
    assert example.input_ids[-1] == tokenizer.eos_token_id


def _examples(lengths):
    out = []
    for doc, length in enumerate(lengths):
        ids = [1000 * (doc + 1) + i for i in range(length)]
        out.append(Example(ids, list(ids)))
    return out


def test_packing_keeps_documents_whole_and_restarts_positions():
    lengths = [7, 3, 12, 5, 9, 1, 16, 4]
    sequences, stats = pack(_examples(lengths), seq_len=16)
    seen = {}
    for sequence in sequences:
        assert len(sequence.input_ids) <= 16
        for token, position, document in zip(
            sequence.input_ids, sequence.position_ids, sequence.document_ids, strict=True
        ):
            assert token == 1000 * (document + 1) + position  # contiguous, in order, positions restart per document
            seen.setdefault(document, []).append(token)
    assert {doc: len(tokens) for doc, tokens in seen.items()} == dict(
        enumerate(lengths)
    )  # every document exactly once, whole
    assert stats.tokens == sum(lengths) and stats.truncated == 0
    assert stats.padding_waste == 1 - sum(lengths) / (16 * stats.sequences)
    assert stats.sequences == 4  # 57 tokens fit in 4 rows of 16


def _document_lengths(sequences):
    return Counter(document for sequence in sequences for document in sequence.document_ids)


def test_packing_closes_gaps_best_fit_leaves():
    # Best-fit decreasing: 10+6, 9+6 (a gap of 1), 5+5+5 (a gap of 1), 2: four rows. The search fills each
    # row exactly: 10+6, 9+5+2, 6+5+5.
    lengths = [10, 9, 6, 6, 5, 5, 5, 2]
    sequences, stats = pack(_examples(lengths), seq_len=16)
    assert stats.sequences == 3 and stats.padding == 0
    assert _document_lengths(sequences) == dict(enumerate(lengths))


def test_packing_waste_on_a_realistic_length_mix_is_near_the_lower_bound():
    rng = random.Random(0)
    # like chat data: nothing shorter than the template and system prompt (34), a long tail; best-fit
    # decreasing pads 2.3% here
    lengths = [min(34 + int(rng.expovariate(1 / 40)), 256) for _ in range(3000)]
    sequences, stats = pack(_examples(lengths), seq_len=256)
    lower_bound = math.ceil(sum(lengths) / 256)
    assert stats.padding_waste < 0.01 and stats.sequences <= lower_bound * 1.01
    assert _document_lengths(sequences) == dict(enumerate(lengths))


def test_first_token_of_each_document_is_not_a_target_and_mask_is_block_diagonal():
    sequences, _ = pack(_examples([3, 2]), seq_len=8)
    batch = collate(sequences, 8, pad_id=0)
    row = sequences[0]
    starts = [i for i, p in enumerate(row.position_ids) if p == 0]
    assert all(batch["labels"][0, i] == IGNORE for i in starts)
    mask = batch["attention_mask"][0, 0]
    a, b = starts[0], starts[1]
    assert mask[b, a].item() is False and mask[b, b].item() is True and mask[a + 1, a].item() is True
    assert batch["position_ids"][0, :5].tolist() == row.position_ids
    assert batch["document_lengths"].tolist() == [[3, 2, 3]]  # the documents, then the padding as one block


@pytest.mark.parametrize("device_kind", ["cuda", "cpu"])  # SDPA with the mask, per-document attention
def test_packed_logits_equal_unpacked(tiny_model_dir, device_kind):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa").eval()
    assert use_packed_attention(model, device_kind) == (device_kind == "cpu")
    sequences, _ = pack(_examples([6, 5]), seq_len=12)
    sequences[0].input_ids = [t % 300 for t in sequences[0].input_ids]
    batch = collate(sequences, 12, pad_id=0)
    with torch.no_grad():
        packed = model(
            **{k: batch[k] for k in ("input_ids", "position_ids", "attention_mask", "document_lengths")}
        ).logits
        second_start = sequences[0].position_ids.index(0, 1)
        alone = model(input_ids=batch["input_ids"][:, second_start:11]).logits
    torch.testing.assert_close(packed[:, second_start:11], alone, rtol=1e-5, atol=1e-5)


def test_throughput_counts_end_of_turn_tokens_even_when_they_are_the_pad_id():
    from trainforge.training.objectives import LanguageModeling

    pad = 2  # an end-of-turn token that is also the pad token, as in SmolLM2
    sequences, _ = pack([Example([5, 6, pad], [5, 6, pad]), Example([7, pad], [7, pad])], seq_len=8)
    objective = LanguageModeling(sequences, 8, pad)
    assert objective.tokens(objective.batch([0])) == 5


def test_loss_on_labelled_positions_only_equals_the_full_logits_loss(tiny_model_dir, monkeypatch):
    from transformers import AutoModelForCausalLM

    from trainforge.training import objectives

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa")
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    records = [chat(f"question number {i}", f"the answer is {i}") for i in range(6)]
    sequences, _ = pack([encode_record(tokenizer, record, "chat") for record in records], seq_len=48)
    objective = objectives.LanguageModeling(sequences, 48, tokenizer.pad_token_id)
    batch = objective.batch(list(range(len(sequences))))
    assert objectives._plain_head(model) is model.get_output_embeddings()

    def loss_and_grad() -> tuple[torch.Tensor, torch.Tensor]:
        model.zero_grad()
        loss = objective.loss_sum(model, batch)
        loss.backward()
        return loss.detach(), model.get_output_embeddings().weight.grad.clone()

    selective = loss_and_grad()
    monkeypatch.setattr(objectives, "PLAIN_HEAD_MODEL_TYPES", frozenset())  # an unknown head: full logits
    assert objectives._plain_head(model) is None
    full = loss_and_grad()
    torch.testing.assert_close(selective[0], full[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(selective[1], full[1], rtol=1e-4, atol=1e-5)
