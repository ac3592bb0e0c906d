"""Serving throughput: generated tokens/s through the HTTP endpoint vs bare ``model.generate``.

    python benchmarks/serve_throughput.py [--model smollm2|tiny] [--prompts 8] [--max-tokens 64]

Both sides decode greedily with the same settings on the same prompts, one request at a time, in the same
run: the baseline calls ``generate`` on the model in this process; the endpoint is ``trainforge serve`` in
its own process, called with the OpenAI client. Throughput counts the tokens each side actually generated.
Target (issue #4): ratio >= 0.9.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import httpx
import torch

PROMPTS = [
    "What is the capital of France?",
    "Give me three tips for a job interview.",
    "How do I reset a forgotten password?",
    "Explain what a neural network is in two sentences.",
    "Write a short thank-you note to a colleague.",
    "What should I pack for a weekend hike?",
    "How does a refund usually work in an online shop?",
    "Summarise why sleep matters.",
]


def base_folder(kind: str, cache: Path) -> Path:
    from trainforge.catalog import resolve_base_model
    from trainforge.training.base_model import materialize

    return materialize(resolve_base_model("lite" if kind == "smollm2" else "tiny", "", local=True), cache)


def bare(model_dir: Path, prompts: list[str], max_tokens: int) -> tuple[int, float]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    eos = model.generation_config.eos_token_id
    tokens, seconds = 0, 0.0
    for prompt in prompts:
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], tokenize=False, add_generation_prompt=True
        )
        ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"]
        start = time.perf_counter()
        with torch.no_grad():
            out = model.generate(
                ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=max_tokens,
                do_sample=False,
                eos_token_id=eos,
                pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id,
            )
        seconds += time.perf_counter() - start
        tokens += out.shape[1] - ids.shape[1]
    return tokens, seconds


def endpoint(model_dir: Path, prompts: list[str], max_tokens: int, port: int) -> tuple[int, float]:
    from openai import OpenAI

    server = subprocess.Popen(
        [sys.executable, "-m", "trainforge.cli", "serve", str(model_dir), "--name", "bench", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "TOKENIZERS_PARALLELISM": "false"},
    )
    try:
        deadline = time.time() + 180
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.time() > deadline or server.poll() is not None:
                raise RuntimeError("the server did not start")
            time.sleep(0.5)
        client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="unused", timeout=600)
        client.chat.completions.create(model="bench", messages=[{"role": "user", "content": "warm up"}], max_tokens=4)
        tokens, seconds = 0, 0.0
        for prompt in prompts:
            start = time.perf_counter()
            reply = client.chat.completions.create(
                model="bench", messages=[{"role": "user", "content": prompt}], max_tokens=max_tokens, temperature=0
            )
            seconds += time.perf_counter() - start
            tokens += reply.usage.completion_tokens
        return tokens, seconds
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=["smollm2", "tiny"], default="smollm2")
    parser.add_argument("--prompts", type=int, default=8)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--cache", type=Path, default=Path(".trainforge/cache/base-models"))
    args = parser.parse_args()
    model_dir = base_folder(args.model, args.cache)
    prompts = (PROMPTS * (1 + args.prompts // len(PROMPTS)))[: args.prompts]
    bare_tokens, bare_seconds = bare(model_dir, prompts, args.max_tokens)
    http_tokens, http_seconds = endpoint(model_dir, prompts, args.max_tokens, args.port)
    print(
        f"machine: {platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}; model {args.model}, "
        f"{len(prompts)} prompts, greedy, max {args.max_tokens} new tokens"
    )
    print(f"bare model.generate: {bare_tokens / bare_seconds:8.1f} tokens/s ({bare_tokens} tokens)")
    print(f"HTTP endpoint:       {http_tokens / http_seconds:8.1f} tokens/s ({http_tokens} tokens)")
    print(f"ratio endpoint / bare: {(http_tokens / http_seconds) / (bare_tokens / bare_seconds):.2f}")


if __name__ == "__main__":
    main()
