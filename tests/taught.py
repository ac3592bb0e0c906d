"""Tiny models that answer something. A randomly initialised tiny model answers every prompt with newlines,
which can neither tell two variants apart nor make a valid chat record. Its final hidden states all point
much the same way (cosine ~0.9 between prompts), so ``saying`` unties the output layer and aims one word's
row along that direction: greedy decoding then answers that word, again and again, whatever it is asked,
while the rest of the model (and its chat template) is untouched. Instant, unlike training one."""

from __future__ import annotations

import shutil
from pathlib import Path

PROMPTS = ("hello how are you", "where is my order", "what is the capital of france")


def saying(base: Path, out: Path, word: str) -> Path:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    shutil.copytree(base, out)
    tokenizer = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32).eval()
    (token,) = tokenizer(word, add_special_tokens=False)["input_ids"]  # a word that is one token
    with torch.no_grad():
        finals = []
        for prompt in PROMPTS:
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
            )
            ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
            finals.append(model(ids, output_hidden_states=True).hidden_states[-1][0, -1])
        direction = torch.stack(finals).mean(0)
        model.config.tie_word_embeddings = False
        model.lm_head.weight = torch.nn.Parameter(model.get_input_embeddings().weight.detach().clone())
        model.lm_head.weight[token] = 100 * direction / direction.norm()
    model.save_pretrained(out)
    return out
