"""Tiny models built from a config: what tests and smoke runs train, through the same loading code that
reads real HF folders. A byte-level BPE tokenizer is trained in well under a second on a fixed corpus,
so the folder is deterministic and needs no download."""

from __future__ import annotations

from pathlib import Path
from typing import Any

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + "
    "'<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "hello how are you today i am fine thank you",
    "what is the capital of france paris is the capital of france",
    "please reset my password the reset link is in your email",
    "your order has shipped and will arrive on monday",
    "user assistant system question answer help support ticket refund",
    "0 1 2 3 4 5 6 7 8 9 10 100 1000 . , ! ? : ; ' \" ( ) - _",
] * 20


def tiny_tokenizer(vocab_size: int = 384) -> Any:
    """The byte-level BPE tokenizer of the tiny models (ChatML specials, the ChatML template), in memory."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(_CORPUS, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def build_tiny_model(
    path: Path, *, vocab_size: int = 384, hidden_size: int = 64, layers: int = 2, seed: int = 0
) -> Path:
    """Write a randomly initialised (seeded) tiny Llama with a ChatML tokenizer to ``path``."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    fast = tiny_tokenizer(vocab_size)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    fast.save_pretrained(path)
    GenerationConfig(eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id, max_new_tokens=32).save_pretrained(
        path
    )
    return path
