import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.conftest import chat
from trainforge.training import attention
from trainforge.training.objectives import LanguageModeling
from trainforge.training.packing import pack
from trainforge.training.tokenize import encode_record


def _loss_and_grads(model, objective, batch):
    model.zero_grad()
    loss = objective.loss_sum(model, batch)
    loss.backward()
    return loss.detach(), {name: p.grad for name, p in model.named_parameters()}


def test_per_document_attention_trains_like_the_block_diagonal_mask(tiny_model_dir, monkeypatch):
    """Loss and every gradient equal, on rows of several documents and a padding tail."""
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    records = [chat(f"question number {i} " * (i % 3 + 1), f"the answer is {i}") for i in range(9)]
    sequences, _ = pack([encode_record(tokenizer, record, "chat") for record in records], seq_len=96)
    objective = LanguageModeling(sequences, 96, tokenizer.pad_token_id)
    batch = objective.batch(list(range(len(sequences))))
    assert len(sequences) > 1 and (batch["document_lengths"] > 0).sum(1).min() >= 3  # documents and padding
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa")
    expected, expected_grads = _loss_and_grads(model, objective, batch)

    calls = []
    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", _counting(calls))
    assert attention.use_packed_attention(model)
    loss, grads = _loss_and_grads(model, objective, batch)
    layers = model.config.num_hidden_layers
    assert len(calls) == layers * int((batch["document_lengths"] > 0).sum())  # one call per document a layer
    torch.testing.assert_close(loss, expected)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, expected_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_without_document_lengths_it_is_the_masked_attention(tiny_model_dir):
    """A call that does not come from a packed batch (generation, DPO's padded rows) gets SDPA and its mask."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa")
    input_ids = torch.tensor([[5, 6, 7, 8, 9], [5, 6, 7, 0, 0]])
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with torch.no_grad():
        expected = model(input_ids=input_ids, attention_mask=mask).logits
        attention.use_packed_attention(model)
        torch.testing.assert_close(model(input_ids=input_ids, attention_mask=mask).logits, expected)


def _counting(calls):
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def count(*args, **kwargs):
        calls.append(1)
        return sdpa(*args, **kwargs)

    return count
