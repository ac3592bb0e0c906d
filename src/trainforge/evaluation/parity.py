"""The parity reference: the evaluated model's own greedy answers to a fixed set of held-out prompts, token by
token with log-probabilities, written beside the evaluation report. Before any traffic moves to a new
version, the deployed endpoint must reproduce them (``pipeline.parity``): a merged LoRA, a dtype, a chat
template, stop tokens or the serving engine can each change what the same weights answer, and nothing
else would notice.

The prompts are the first held-out chat examples, in file order, each without its final assistant turn;
the model is the one evaluation loaded and scored, on the same device and dtype; generation is greedy, up
to ``max_new_tokens``, stopping where the model's generation config stops.
"""

from __future__ import annotations

from typing import Any

import torch

from trainforge.contracts import DataFormat, ParityAnswer, ParityReference, ParityToken
from trainforge.evaluation.scoring import greedy, prompt_ids
from trainforge.training.tokenize import as_messages

#: formats whose examples are conversations the endpoint's chat route answers
CHAT_FORMATS = ("chat", "bedrock_conversation")


def parity_prompts(records: list[dict[str, Any]], fmt: DataFormat, count: int) -> list[list[dict[str, str]]]:
    """The first ``count`` held-out conversations, each up to (not including) its last assistant turn."""
    if fmt not in CHAT_FORMATS:
        return []
    prompts = []
    for record in records:
        messages = as_messages(record, fmt)
        if len(messages) >= 2 and messages[-1]["role"] == "assistant":
            prompts.append(messages[:-1])
        if len(prompts) == count:
            break
    return prompts


def greedy_answer(model: Any, tokenizer: Any, messages: list[dict[str, str]], max_new_tokens: int) -> ParityAnswer:
    ids = prompt_ids(model, tokenizer, messages)  # rendered and decoded as evaluation does
    output = greedy(model, tokenizer, ids, max_new_tokens, return_dict_in_generate=True, output_logits=True)
    new = output.sequences[0, ids.shape[1] :].tolist()
    tokens = []
    for token, logits in zip(new, output.logits, strict=False):
        logprobs = torch.log_softmax(logits[0].float(), -1)
        best, runner_up = logprobs.topk(2).values.tolist()
        tokens.append(
            ParityToken(token=str(tokenizer.decode([token])), logprob=float(logprobs[token]), margin=best - runner_up)
        )
    return ParityAnswer(messages=messages, text=str(tokenizer.decode(new, skip_special_tokens=True)), tokens=tokens)


def parity_reference(
    model: Any,
    tokenizer: Any,
    records: list[dict[str, Any]],
    fmt: DataFormat,
    *,
    run_id: str,
    count: int,
    max_new_tokens: int,
) -> ParityReference:
    answers = [
        greedy_answer(model, tokenizer, prompt, max_new_tokens) for prompt in parity_prompts(records, fmt, count)
    ]
    return ParityReference(run_id=run_id, max_new_tokens=max_new_tokens, answers=answers)
