import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.conftest import chat
from trainforge.training import attention, objectives
from trainforge.training.config import TrainConfig
from trainforge.training.lora import apply_lora
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
    assert attention.use_packed_attention(model, "cpu")
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
        attention.use_packed_attention(model, "cpu")
        torch.testing.assert_close(model(input_ids=input_ids, attention_mask=mask).logits, expected)


def _packed_batch(tiny_model_dir):
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    records = [chat(f"question {i} " * (i % 3 + 1), f"answer {i}") for i in range(6)]
    sequences, _ = pack([encode_record(tokenizer, record, "chat") for record in records], seq_len=64)
    objective = LanguageModeling(sequences, 64, tokenizer.pad_token_id)
    return objective, objective.batch(list(range(len(sequences))))


def _sdpa_model(tiny_model_dir):
    return AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32, attn_implementation="sdpa")


def test_a_model_type_outside_the_list_gets_no_lengths_and_the_masked_attention(tiny_model_dir, monkeypatch):
    """Given an architecture the per-document attention is not known to fit, on a CPU: the model keeps SDPA,
    its forward never sees the documents' lengths, and each layer makes one masked call."""
    objective, batch = _packed_batch(tiny_model_dir)
    model = _sdpa_model(tiny_model_dir)
    expected = objective.loss_sum(model, batch).detach()
    monkeypatch.setattr(model.config, "model_type", "gpt_neox")
    forward_arguments = []
    model.register_forward_pre_hook(lambda module, args, kwargs: forward_arguments.append(kwargs), with_kwargs=True)
    calls = []
    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", _counting(calls))

    assert not attention.use_packed_attention(model, "cpu")
    loss = objective.loss_sum(model, batch)

    assert model.config._attn_implementation == "sdpa"
    assert attention.attention_inputs(model, batch) == {}
    assert forward_arguments and all("document_lengths" not in kwargs for kwargs in forward_arguments)
    assert len(calls) == model.config.num_hidden_layers
    torch.testing.assert_close(loss.detach(), expected)


def test_on_a_gpu_no_model_is_switched(tiny_model_dir):
    model = _sdpa_model(tiny_model_dir)
    assert not attention.use_packed_attention(model, "cuda")
    assert model.config._attn_implementation == "sdpa"


def test_the_output_head_does_not_decide_the_attention(tiny_model_dir, monkeypatch):
    """A switched model whose loss goes through the full logits (its type not among the plain heads) still
    runs attention per document: editing the head list does not change which attention runs."""
    objective, batch = _packed_batch(tiny_model_dir)
    model = _sdpa_model(tiny_model_dir)
    monkeypatch.setattr(objectives, "PLAIN_HEAD_MODEL_TYPES", frozenset())
    assert objectives._plain_head(model) is None
    expected = objective.loss_sum(model, batch).detach()
    calls = []
    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", _counting(calls))

    assert attention.use_packed_attention(model, "cpu")
    loss = objective.loss_sum(model, batch)

    assert len(calls) == model.config.num_hidden_layers * int((batch["document_lengths"] > 0).sum())
    torch.testing.assert_close(loss.detach(), expected)


def test_a_lora_model_is_switched_and_gets_the_lengths_through_its_wrapper(tiny_model_dir):
    _, batch = _packed_batch(tiny_model_dir)
    model = apply_lora(_sdpa_model(tiny_model_dir), TrainConfig(lora_rank=4, lora_alpha=8))
    assert attention.use_packed_attention(model, "cpu")
    assert attention.attention_inputs(model, batch).keys() == {"document_lengths"}


def _counting(calls):
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def count(*args, **kwargs):
        calls.append(1)
        return sdpa(*args, **kwargs)

    return count


def test_under_bf16_autocast_on_a_cpu_the_kernel_runs_in_fp32(monkeypatch):
    """Per document and in the masked fallback alike: fp32 inside (the faster kernel), the autocast dtype out.
    The inputs as a Llama block hands them over: query and key fp32 (rotary's cos and sin are), value bf16."""
    generator = torch.Generator().manual_seed(0)
    query, key, value = (torch.randn(1, heads, 10, 8, generator=generator) for heads in (4, 2, 2))
    value = value.bfloat16()
    module = torch.nn.Module()
    module.is_causal, module.num_key_value_groups = True, 2
    expected = {  # the fp32 kernel on the same inputs, no autocast
        lengths: attention.packed_attention(
            module, query.float(), key.float(), value.float(), None, document_lengths=lengths
        )[0].bfloat16()
        for lengths in (torch.tensor([[4, 6]]), None)
    }
    seen = []  # what the kernel gets: autocast would cast fp32 inputs down inside the call

    def kernel(q, k, v, *args, **kwargs):
        seen.append((q.dtype, k.dtype, v.dtype, torch.is_autocast_enabled("cpu")))
        return sdpa(q, k, v, *args, **kwargs)

    sdpa = attention.F.scaled_dot_product_attention
    monkeypatch.setattr(attention.F, "scaled_dot_product_attention", kernel)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        for lengths, want in expected.items():
            output, _ = attention.packed_attention(module, query, key, value, None, document_lengths=lengths)
            assert output.dtype == torch.bfloat16
            torch.testing.assert_close(output, want, rtol=0, atol=0)
    assert seen == [(torch.float32,) * 3 + (False,)] * 3  # two documents, then the fallback's one call
