"""A causal LM fine-tuned by a training loop of its own, on SageMaker's script-mode contract.

It reads the base model from the base_model channel and the records from the train and validation
channels, prints its metrics as JSON lines ({"step": ..., "loss": ...}, {"step": ..., "eval_loss": ...})
and saves an HF folder (weights, config, tokenizer) into SM_MODEL_DIR, which TrainForge's own evaluation
then scores against the base model.
"""

import argparse
import json
import os
import random
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def texts(channel: str, eos: str) -> list[str]:
    folder = Path(os.environ[f"SM_CHANNEL_{channel.upper()}"])
    rows = [json.loads(line) for path in sorted(folder.rglob("*.jsonl")) for line in path.read_text().splitlines()]
    return [f"{row['prompt']} {row['completion']}{eos}" for row in rows if line_ok(row)]


def line_ok(row: dict) -> bool:
    return isinstance(row.get("prompt"), str) and isinstance(row.get("completion"), str)


def batches(items: list[str], size: int, rng: random.Random):
    while True:
        order = items[:]
        rng.shuffle(order)
        for start in range(0, len(order) - size + 1, size):
            yield order[start : start + size]


def loss_of(model, tokenizer, batch: list[str], max_length: int) -> torch.Tensor:
    encoded = tokenizer(batch, return_tensors="pt", padding=True, truncation=True, max_length=max_length)
    labels = encoded["input_ids"].masked_fill(encoded["attention_mask"] == 0, -100)
    return model(**encoded, labels=labels).loss


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--learning_rate", type=float, default=5e-3)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--max_length", type=int, default=64)
    parser.add_argument("--eval_every", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args, _ = parser.parse_known_args()  # the platform adds names of its own (base_model_id)

    torch.manual_seed(args.seed)
    base = os.environ["SM_CHANNEL_BASE_MODEL"]
    tokenizer = AutoTokenizer.from_pretrained(base)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    eos = tokenizer.eos_token or ""
    train = texts("train", eos)
    validation = texts("validation", eos) if "SM_CHANNEL_VALIDATION" in os.environ else train[-16:]
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.learning_rate)
    stream = batches(train, args.batch_size, random.Random(args.seed))

    for step in range(1, args.steps + 1):
        model.train()
        loss = loss_of(model, tokenizer, next(stream), args.max_length)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        print(json.dumps({"step": step, "loss": round(loss.item(), 4), "total_steps": args.steps}), flush=True)
        if step % args.eval_every == 0 or step == args.steps:
            model.eval()
            with torch.no_grad():
                losses = [
                    loss_of(model, tokenizer, validation[i : i + 8], args.max_length).item()
                    for i in range(0, len(validation), 8)
                ]
            print(json.dumps({"step": step, "eval_loss": round(sum(losses) / len(losses), 4)}), flush=True)

    model_dir = os.environ["SM_MODEL_DIR"]
    model.save_pretrained(model_dir, safe_serialization=True)
    tokenizer.save_pretrained(model_dir)


if __name__ == "__main__":
    main()
