"""The generation engine behind every route: the model's chat template, its stop tokens and generation
settings, greedy or sampled decoding, and streaming.

One lock serialises generation: on a CPU or a single GPU, concurrent ``generate`` calls only contend for
the same cores, and serialising keeps per-request latency predictable and memory bounded while the
HTTP layer accepts any number of concurrent requests.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch


@dataclass(frozen=True)
class GenerationParams:
    max_new_tokens: int = 128
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    #: return each generated token with its log-probability under the model's raw logits (OpenAI's
    #: ``logprobs``): what the parity check compares with the evaluated model's
    logprobs: bool = False


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float


@dataclass
class Generation:
    text: str
    prompt_tokens: int
    completion_tokens: int
    finish_reason: str
    seconds: float = field(default=0.0)
    logprobs: list[TokenLogprob] | None = None


def _cut_at_stop(text: str, stop: tuple[str, ...]) -> tuple[str, bool]:
    cuts = [text.index(s) for s in stop if s and s in text]
    return (text[: min(cuts)], True) if cuts else (text, False)


class Engine:
    def __init__(self, model_dir: Path, name: str | None = None, device: str | None = None) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_dir = model_dir
        self.name = name or model_dir.name
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        dtype = torch.bfloat16 if self.device == "cuda" else torch.float32
        loader: Any = AutoModelForCausalLM
        self.model: Any = loader.from_pretrained(model_dir, dtype=dtype)
        self.model.to(self.device).eval()
        self.created = int(time.time())
        self._lock = threading.Lock()
        config = self.model.generation_config
        eos = config.eos_token_id if config.eos_token_id is not None else self.tokenizer.eos_token_id
        self.eos_ids = sorted({*(eos if isinstance(eos, list) else [eos]), self.tokenizer.eos_token_id} - {None})
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.eos_ids[0]

    def render_chat(self, messages: list[dict[str, str]]) -> str:
        return str(self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))

    def _inputs(self, prompt: str) -> torch.Tensor:
        return self.tokenizer(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"].to(self.device)

    def _kwargs(self, params: GenerationParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "eos_token_id": self.eos_ids,
            "pad_token_id": self.pad_id,
        }
        if params.temperature > 0:
            kwargs |= {"do_sample": True, "temperature": params.temperature, "top_p": params.top_p}
        else:
            kwargs |= {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        if params.logprobs:
            kwargs |= {"return_dict_in_generate": True, "output_logits": True}
        return kwargs

    def _token_logprobs(self, new: list[int], logits: tuple[torch.Tensor, ...]) -> list[TokenLogprob]:
        """Each generated token and its log-probability, from the logits before any processor (the scores
        ``generate`` returns are after temperature and penalties)."""
        return [
            TokenLogprob(str(self.tokenizer.decode([token])), float(torch.log_softmax(step[0].float(), -1)[token]))
            for token, step in zip(new, logits, strict=False)
        ]

    def generate(self, prompt: str, params: GenerationParams) -> Generation:
        ids = self._inputs(prompt)
        started = time.perf_counter()
        with self._lock, torch.no_grad():
            if params.seed is not None:
                torch.manual_seed(params.seed)
            output = self.model.generate(ids, attention_mask=torch.ones_like(ids), **self._kwargs(params))
        sequences = output.sequences if params.logprobs else output
        new = sequences[0, ids.shape[1] :].tolist()
        finished = bool(new) and new[-1] in self.eos_ids
        text, stopped = _cut_at_stop(str(self.tokenizer.decode(new, skip_special_tokens=True)), params.stop)
        reason = "stop" if finished or stopped else "length"
        logprobs = self._token_logprobs(new, output.logits) if params.logprobs else None
        return Generation(text, ids.shape[1], len(new), reason, time.perf_counter() - started, logprobs)

    def stream(self, prompt: str, params: GenerationParams) -> Iterator[str]:
        """Text deltas as they are generated; the final delta is followed by nothing (the caller ends)."""
        from transformers import TextIteratorStreamer

        ids = self._inputs(prompt)
        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=300)

        def run() -> None:
            with self._lock, torch.no_grad():
                if params.seed is not None:
                    torch.manual_seed(params.seed)
                self.model.generate(ids, attention_mask=torch.ones_like(ids), streamer=streamer, **self._kwargs(params))

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        emitted = ""
        for piece in streamer:
            candidate, stopped = _cut_at_stop(emitted + piece, params.stop)
            if candidate[len(emitted) :]:
                yield candidate[len(emitted) :]
            emitted = candidate
            if stopped:
                break
        worker.join()
