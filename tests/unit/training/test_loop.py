"""The training loop on a tiny model: learning, exactness, resume, LoRA merge, DPO, early stopping."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM

from trainforge.training.entrypoint import train_from_contract

# Loss after 12 full fine-tune steps of the fixture's run on CPU (fp32). A change to tokenization, packing, the
# loss, the optimizer, the schedule or the train/validation split moves it; update it only for a change that should.
PINNED_FINAL_LOSS = 3.5050900107935856


def metrics(root: Path) -> list[dict]:
    return [json.loads(line) for line in (root / "checkpoints/metrics.jsonl").read_text().splitlines()]


def test_loss_decreases_and_is_pinned(opt_ml):
    root = opt_ml(method="full", max_steps=12, learning_rate=0.005, warmup_ratio=0.0)
    summary = train_from_contract(root)
    losses = [m["loss"] for m in metrics(root) if "loss" in m]
    assert len(losses) == 12
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3 - 0.3
    torch.testing.assert_close(summary["final_loss"], PINNED_FINAL_LOSS, rtol=1e-4, atol=1e-4)


def _train_subprocess(root: Path, env_extra: dict | None = None) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env_extra or {})}
    return subprocess.Popen(
        [sys.executable, "-m", "trainforge.training.entrypoint", "--opt-ml", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )


def test_killed_and_resumed_run_matches_uninterrupted_bit_for_bit(opt_ml):
    settings = {"max_steps": 10, "checkpoint_every": 1, "eval_every": 100, "lora_dropout": 0.1}
    reference = opt_ml(name="reference", **settings)
    train_from_contract(reference)
    interrupted = opt_ml(name="interrupted", **settings)
    kill_at = random.Random().randint(2, 8)  # a random step, as a spot reclaim would pick
    process = _train_subprocess(interrupted)
    assert process.stdout is not None
    for line in process.stdout:
        if json.loads(line).get("step") == kill_at and "loss" in json.loads(line):
            process.send_signal(signal.SIGKILL)
            break
    process.wait()
    assert not (interrupted / "model" / "model.safetensors").exists()
    resumed = _train_subprocess(interrupted)
    out, _ = resumed.communicate()
    assert resumed.returncode == 0
    assert any(json.loads(line).get("event") == "resumed" for line in out.splitlines())
    expected = load_file(reference / "model" / "model.safetensors")
    actual = load_file(interrupted / "model" / "model.safetensors")
    assert expected.keys() == actual.keys()
    for name in expected:
        assert torch.equal(expected[name], actual[name]), name


def test_sigterm_writes_a_checkpoint_and_a_failure_reason(opt_ml):
    root = opt_ml(max_steps=400, checkpoint_every=1000, eval_every=1000)
    process = _train_subprocess(root)
    assert process.stdout is not None
    for line in process.stdout:
        if json.loads(line).get("step") == 2:
            process.send_signal(signal.SIGTERM)
            break
    process.communicate()
    assert process.returncode == 1
    assert "interrupted by SIGTERM" in (root / "output/failure").read_text()
    assert any((root / "checkpoints").glob("step-*/COMPLETE"))


def test_a_checkpoint_of_another_model_is_refused_with_its_path(opt_ml):
    """Rerunning into a checkpoint folder written with other LoRA settings must not train on mixed weights."""
    from trainforge.training.entrypoint import main

    root = opt_ml(max_steps=2, checkpoint_every=2, eval_every=100)
    train_from_contract(root)
    hyper_file = root / "input/config/hyperparameters.json"
    hyper_file.write_text(json.dumps({**json.loads(hyper_file.read_text()), "max_steps": "4", "lora_rank": "8"}))
    assert main(["--opt-ml", str(root)]) == 1
    failure = (root / "output/failure").read_text()
    assert failure.startswith("TrainingFailed: checkpoint ")
    assert "checkpoints/step-00000002 does not match the model being trained" in failure
    assert "Size mismatch" in failure and "lora_A" in failure  # which tensor, not a traceback
    assert "Traceback" not in failure


def test_lora_merge_gives_the_same_logits_as_base_plus_adapter(opt_ml, tiny_model_dir):
    from peft import PeftModel

    root = opt_ml(max_steps=4, learning_rate=0.05)
    train_from_contract(root)
    ids = torch.tensor([[1, 50, 60, 70, 80, 2]])
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    with_adapter = PeftModel.from_pretrained(base, root / "model" / "adapter").eval()
    merged = AutoModelForCausalLM.from_pretrained(root / "model").eval()
    with torch.no_grad():
        expected = with_adapter(input_ids=ids).logits
        actual = merged(input_ids=ids).logits
        untouched = AutoModelForCausalLM.from_pretrained(tiny_model_dir)(input_ids=ids).logits
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(actual, untouched, atol=1e-4)  # the adapter did change something


def test_export_is_a_plain_hf_folder_with_lineage(opt_ml):
    root = opt_ml(max_steps=2, base_model_id="tiny-llama-test", spec_sha256="abc")
    train_from_contract(root)
    model_dir = root / "model"
    for name in (
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
        "generation_config.json",
        "trainforge.json",
    ):
        assert (model_dir / name).is_file(), name
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    assert tokenizer.chat_template and "<|im_start|>" in tokenizer.chat_template
    AutoModelForCausalLM.from_pretrained(model_dir)
    lineage = json.loads((model_dir / "trainforge.json").read_text())
    assert lineage["base_model_id"] == "tiny-llama-test" and lineage["spec_sha256"] == "abc"
    assert list(lineage["data_sha256"]) == ["train/train.jsonl"]
    assert lineage["steps"] == 2


def test_early_stopping_on_validation_loss(opt_ml):
    root = opt_ml(max_steps=60, learning_rate=0.9, eval_every=1, early_stopping_patience=2, max_grad_norm=100.0)
    summary = train_from_contract(root)
    assert summary["stopped_early"] and summary["steps"] < 60


def test_a_resumed_run_that_had_stopped_early_trains_no_further(opt_ml):
    """Killed after its early stop's checkpoint but before it exported, a run resumes stopped: it trains no
    step past the stop and ends with the same best weights (a tuning study rerun after a kill did train on)."""
    import shutil

    from trainforge.training.checkpoint import step_folder

    root = opt_ml(max_steps=60, learning_rate=0.9, eval_every=1, early_stopping_patience=2, max_grad_norm=100.0)
    first = train_from_contract(root)
    assert first["stopped_early"] and (step_folder(root / "checkpoints", first["steps"])).is_dir()
    shutil.rmtree(root / "model")
    (root / "model").mkdir()
    again = train_from_contract(root)
    trained = [m["step"] for m in metrics(root) if "loss" in m and "step" in m]
    assert max(trained) == first["steps"]  # no step after the stop, in either process
    assert again["stopped_early"] and again["steps"] == first["steps"]
    assert again["restored_step"] == first["restored_step"] and again["best_eval_loss"] == first["best_eval_loss"]
    assert again["final_loss"] == first["final_loss"]  # the last step's loss, read back: not NaN


def test_a_run_that_validates_ends_with_its_best_weights(opt_ml):
    from transformers import AutoTokenizer

    from trainforge.training.checkpoint import step_folder
    from trainforge.training.config import TrainConfig
    from trainforge.training.data_setup import build_objectives
    from trainforge.training.devices import select_device
    from trainforge.training.distributed import World
    from trainforge.training.loop import evaluate

    # a learning rate that overshoots: validation loss falls, then climbs until early stopping ends the run
    root = opt_ml(
        max_steps=60,
        learning_rate=0.9,
        eval_every=1,
        early_stopping_patience=2,
        max_grad_norm=100.0,
        keep_checkpoints=1,
    )
    summary = train_from_contract(root)
    evals = {m["step"]: m["eval_loss"] for m in metrics(root) if "eval_loss" in m}
    best = min(evals, key=evals.__getitem__)
    assert summary["stopped_early"] and best < summary["steps"] and summary["restored_step"] == best
    assert (step_folder(root / "checkpoints", best)).is_dir()  # kept out of a rotation that keeps one
    assert {"event": "restored_best", "step": best, "validation_loss": evals[best]} in metrics(root)
    # the exported model is the best step's: it scores the best validation loss, not the last step's
    config = TrainConfig.model_validate(summary["hyperparameters"])
    model = AutoModelForCausalLM.from_pretrained(root / "model", dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(root / "model")
    validation = build_objectives(tokenizer, root / "input/data/train", None, config).validation
    loss = evaluate(model, validation, config, select_device("cpu", "fp32"), World(0, 1, 0)).loss
    assert loss == pytest.approx(evals[best], abs=1e-4) and evals[summary["steps"]] > evals[best] + 1e-3


def test_non_finite_loss_fails_with_a_typed_reason(opt_ml, monkeypatch):
    from trainforge.training import objectives
    from trainforge.training.entrypoint import main

    root = opt_ml(max_steps=5)
    monkeypatch.setattr(objectives, "linear_cross_entropy", lambda hidden, *_: hidden.sum() * float("nan"))
    assert main(["--opt-ml", str(root)]) == 1
    assert (root / "output/failure").read_text().startswith("NonFiniteLoss: loss became nan at step 1")


def test_continued_pretraining_and_dpo_run(opt_ml, tmp_path):
    text_rows = [{"text": f"the quick brown fox number {i} jumps over the lazy dog"} for i in range(30)]
    root = opt_ml(rows=text_rows, name="cpt", method="continued_pretraining", max_steps=3)
    assert train_from_contract(root)["data_format"] == "text"
    pairs = [{"prompt": f"say hello {i}", "chosen": "hello how are you", "rejected": "go away"} for i in range(24)]
    root = opt_ml(rows=pairs, name="dpo", method="dpo", max_steps=4, learning_rate=0.05)
    summary = train_from_contract(root)
    losses = [m["loss"] for m in metrics(root) if "loss" in m]
    assert summary["data_format"] == "preference" and losses[0] == pytest.approx(0.6931, abs=1e-3)  # log 2 at start
    assert losses[-1] < losses[0]


def test_only_a_run_on_one_node_reads_its_best_weights_back(monkeypatch):
    from trainforge.training.distributed import World
    from trainforge.training.loop import _one_disk

    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
    assert _one_disk(World(0, 1, 0))
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "4")  # torchrun: four processes on this node
    assert _one_disk(World(0, 4, 0))
    assert not _one_disk(World(5, 8, 1))  # eight on two nodes: each node's disk holds half a checkpoint
