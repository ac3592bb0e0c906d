"""``trainforge-train``: the SageMaker training-container contract.

    /opt/ml/input/config/hyperparameters.json   TrainConfig as strings
    /opt/ml/input/data/train/                   training files (JSONL, .gz, .txt)
    /opt/ml/input/data/validation/              optional; otherwise validation_fraction is held out
    /opt/ml/input/data/base_model/              the base model's HF folder (a channel: no network needed)
    /opt/ml/model/                              the exported HF folder (SageMaker uploads it)
    /opt/ml/checkpoints/                        checkpoints (SageMaker syncs them to S3 for spot/retries)
    /opt/ml/output/failure                      why the job failed, when it did
    /opt/ml/checkpoints/metrics.jsonl           the metrics history (synced to S3 as the job runs)

The root is ``--opt-ml`` or ``$TRAINFORGE_OPT_ML`` (default /opt/ml) so local mode runs unprivileged.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainforge.errors import OutOfMemory, TrainForgeError, TrainingFailed

if TYPE_CHECKING:
    from trainforge.training.config import TrainConfig

METRICS_FILE = "metrics.jsonl"


def _sha256_tree(folder: Path) -> dict[str, str]:
    from trainforge.data.records import data_files

    out = {}
    for path in data_files(folder):
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        out[str(path.relative_to(folder.parent))] = digest.hexdigest()
    return out


def load_trainable(base_dir: Path, config: TrainConfig) -> Any:
    """The base model as training starts from it: fp32 weights, a LoRA adapter attached when the method
    trains one, activation checkpointing if asked."""
    import torch
    from transformers import AutoModelForCausalLM

    from trainforge.training.lora import apply_lora

    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, attn_implementation="sdpa")
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    if config.trains_adapter:
        model = apply_lora(model, config)
    return model


def _unsharded(model: Any, weights: dict[str, Any]) -> Any:
    """``model`` holding the gathered ``weights``: every one of its tensors but the aliases of tied weights
    (the head tied to the embeddings), which the gathered state lists once."""
    keys = model.load_state_dict(weights, strict=False)
    every = {name for name, _ in model.named_parameters(remove_duplicate=False)}
    aliases = every - {name for name, _ in model.named_parameters()}
    if keys.unexpected_keys or set(keys.missing_keys) - aliases:
        raise TrainingFailed(f"the gathered FSDP weights do not match the model to export: {keys}")
    return model


def train_from_contract(root: Path) -> dict[str, Any]:
    """Run one training job against an /opt/ml tree; returns the summary written to trainforge.json."""
    import torch
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from trainforge.media.generation import is_english_only, save_speech_defaults
    from trainforge.media.models import media_modality
    from trainforge.training.base_model import base_sha256
    from trainforge.training.config import TrainConfig
    from trainforge.training.data_setup import build_objectives
    from trainforge.training.devices import select_device
    from trainforge.training.distributed import full_state_dict, init_world, is_sharded, shutdown
    from trainforge.training.export import export_model
    from trainforge.training.loop import run_training
    from trainforge.training.media_objectives import build_media_objectives, load_media_trainable
    from trainforge.training.memory import fit_to_device
    from trainforge.tuning.trial import objective_progress, trial_objective, trial_probes_before

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    started = time.time()
    config = TrainConfig.from_hyperparameters(json.loads((root / "input/config/hyperparameters.json").read_text()))
    channels = root / "input/data"
    base_dir = channels / "base_model"
    if not (base_dir / "config.json").is_file():
        raise TrainingFailed(f"no base model in channel base_model ({base_dir}/config.json missing)")
    device = select_device(config.device, config.precision, int(os.environ.get("LOCAL_RANK", "0")))
    world = init_world(device.kind)
    # In the checkpoint folder: SageMaker syncs it to S3 while the job runs, and it survives a resume.
    metrics_path = root / "checkpoints" / METRICS_FILE
    metrics_path.parent.mkdir(parents=True, exist_ok=True)

    def emit(record: dict[str, Any]) -> None:
        if not world.is_main:
            return
        line = json.dumps(record)
        print(line, flush=True)
        with metrics_path.open("a") as handle:
            handle.write(line + "\n")

    emit({"event": "precision", "device": device.kind, "bf16": device.bf16, "reason": device.precision_reason})
    # before the model is loaded: what fits decides whether it is loaded with activation checkpointing
    fit, memory = fit_to_device(config, base_dir, device, world)
    emit({"event": "memory", **{key: value for key, value in memory.items() if key != "adjustments"}})
    for adjustment in memory.get("adjustments", []):
        emit({"event": "adjusted", **adjustment})
    if fit is not None:
        if not fit.fits:
            raise OutOfMemory(f"before training: {fit.explain()}")
        config = fit.hyperparameters
    torch.manual_seed(config.seed)
    validation_dir, replay_dir = channels / "validation", channels / "replay"
    if media_modality(base_dir) is None:
        tokenizer = AutoTokenizer.from_pretrained(base_dir)
        model = load_trainable(base_dir, config)  # on the CPU: the loop places it (or its shards) on the device
        objectives = build_objectives(
            tokenizer,
            channels / "train",
            validation_dir if validation_dir.exists() else None,
            config,
            replay_dir if replay_dir.exists() else None,
        )
    else:  # speech or image+text: the processor stands in for the tokenizer (the export saves it whole)
        tokenizer, model = load_media_trainable(base_dir, config)
        given_validation = validation_dir if validation_dir.exists() else None
        english_only = is_english_only(model.generation_config)
        objectives = build_media_objectives(
            tokenizer, channels / "train", given_validation, config, model.config, english_only=english_only
        )
    emit({"event": "data", **objectives.stats})
    probes_before = trial_probes_before(model, tokenizer, config, root / "checkpoints", world.is_main)
    outcome = run_training(
        model,
        objectives.train,
        objectives.validation,
        config,
        device,
        world,
        root / "checkpoints",
        emit,
        objective_progress(emit, config),  # the final objective line comes last, below
    )
    summary: dict[str, Any] = {
        "base_model_id": config.base_model_id,
        "base_sha256": base_sha256(base_dir),
        "spec_sha256": config.spec_sha256,
        "method": config.method,
        "data_format": objectives.data_format,
        "data_sha256": _sha256_tree(channels / "train"),
        "steps": outcome.steps,
        "tokens_seen": outcome.tokens_seen,
        "final_loss": outcome.final_loss,
        "best_eval_loss": outcome.best_eval_loss,
        "best_exact_match": outcome.best_exact_match,  # where the run selects by it (``training.selection``)
        "restored_step": outcome.restored_step,  # the weights exported, when not the last step's
        "stopped_early": outcome.stopped_early,
        "interrupted": outcome.interrupted,
        "wall_seconds": round(time.time() - started, 2),
        "processes": world.size,
        # the resolved settings: the spec's, as fitted to the device's memory (``memory`` says what changed)
        "hyperparameters": config.model_dump(),
        "memory": {**memory, "peak_mb": None if outcome.peak_memory is None else round(outcome.peak_memory / 2**20)},
        **objectives.stats,
    }
    if probes_before is not None and not outcome.interrupted and not is_sharded(model):
        summary["tuning"] = trial_objective(model, tokenizer, config, outcome, probes_before)
        emit(summary["tuning"])
    if outcome.interrupted:
        raise TrainingFailed(
            f"interrupted by SIGTERM after step {outcome.steps}; a checkpoint was written, rerun to resume"
        )
    if is_sharded(model):  # gather the shards into an unsharded copy on rank 0 (host memory) to export it
        weights = full_state_dict(model)
        if world.is_main:
            model = _unsharded(load_trainable(base_dir, config), weights)
    if world.is_main:
        export_model(model.cpu(), tokenizer, base_dir, root / "model", is_lora=config.trains_adapter, lineage=summary)
        if objectives.data_format == "speech":  # a request without a language gets the prompt it trained on
            save_speech_defaults(root / "model", tokenizer.tokenizer, objectives.stats["language"])
        emit({"event": "exported", "steps": outcome.steps, "final_loss": outcome.final_loss})
    world.barrier()
    shutdown()
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="trainforge-train", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--opt-ml", type=Path, default=Path(os.environ.get("TRAINFORGE_OPT_ML", "/opt/ml")))
    args, rest = parser.parse_known_args(argv)  # SageMaker runs `IMAGE train` or `IMAGE serve`
    root: Path = args.opt_ml
    if "serve" in rest:
        from trainforge.serving.server import serve_sagemaker

        serve_sagemaker(root)
        return 0
    from trainforge.training.allocator import return_freed_memory
    from trainforge.training.launch import torchrun_command

    try:
        workers = torchrun_command(root, ["--opt-ml", str(root)])
        if workers:  # become torchrun: it forwards SIGTERM to the workers, which checkpoint and record failures
            os.execv(workers[0], workers)
        return_freed_memory()
        train_from_contract(root)
    except Exception as exc:  # the contract: every failure leaves its reason in /opt/ml/output/failure
        failure = root / "output/failure"
        failure.parent.mkdir(parents=True, exist_ok=True)
        name = type(exc).__name__ if isinstance(exc, TrainForgeError) else f"{type(exc).__name__} (unexpected)"
        failure.write_text(f"{name}: {exc}\n")
        traceback.print_exc()
        print(json.dumps({"event": "failed", "error": type(exc).__name__, "message": str(exc)}), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
