"""Whether a custom job's model is one the built-in evaluation (and the serving engines) read: a Hugging
Face folder with its config, its weights and its tokenizer, as ``save_pretrained`` writes them
(evaluation loads the tokenizer from the tuned folder, ``evaluation/scoring.py`` ``load_pair``).

Checked from the store's listing alone, before an evaluation job is started for a model it cannot load; a
model of another kind stops the run here, saying what is expected and the other way through (its own
``custom.evaluation_entry_point``)."""

from __future__ import annotations

from trainforge.errors import EvaluationFailed
from trainforge.store import open_store

#: the reason's opening words (pipeline/triage.py hints on them)
NOT_HF = "is not a Hugging Face model folder"


def missing_hf_files(names: list[str]) -> list[str]:
    """What an HF causal LM folder lacks among ``names`` (file names relative to the folder)."""
    missing = []
    if "config.json" not in names:
        missing.append("config.json")
    if not any(n.endswith(".safetensors") or (n.startswith("pytorch_model") and n.endswith(".bin")) for n in names):
        missing.append("weights (*.safetensors)")
    if not {"tokenizer.json", "tokenizer_config.json"}.intersection(names):
        missing.append("a tokenizer (tokenizer.json / tokenizer_config.json)")
    return missing


def require_hf_folder(model_uri: str) -> None:
    prefix = model_uri.rstrip("/") + "/"
    names = [info.uri[len(prefix) :] for info in open_store(prefix).list(prefix)]
    missing = missing_hf_files(names)
    if missing:
        found = ", ".join(sorted(names)[:10]) or "nothing"
        raise EvaluationFailed(
            f"the custom job's model at {prefix} {NOT_HF}, which the built-in evaluation reads: it lacks "
            f"{'; '.join(missing)} (found: {found}). Save the model and its tokenizer with save_pretrained into "
            "SM_MODEL_DIR, or name custom.evaluation_entry_point: a script of yours that scores the model and "
            "writes the report the gate reads"
        )
