"""Your own training code on this machine: the three examples run by the local runner end to end, the PyTorch
example's script on the /opt/ml contract, and the three ways a script fails.

The framework virtualenvs are built once per machine into ``.twin/venvs`` (gitignored, shared with the twin's image venvs) by the session
fixture, and shared by every test here; cold on 2 CPU cores: PyTorch 88 s, TensorFlow 46 s, JAX 32 s, the
PyTorch example's ``transformers`` on top 32 s. Test time counts them only when the cache is cold.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT
from trainforge.contracts import TrainingRequest
from trainforge.custom.model_format import require_hf_folder
from trainforge.custom.request import custom_parts
from trainforge.custom.runner import run_script_training, script_venv
from trainforge.custom.script_mode import NO_METRICS, NO_MODEL
from trainforge.errors import TrainingFailed
from trainforge.pipeline import steps
from trainforge.pipeline.platform import Platform
from trainforge.pipeline.triage import hint_for
from trainforge.spec import CustomSpec, parse_spec

EXAMPLES = ROOT / "examples" / "custom"
CACHE = ROOT / ".twin" / "venvs"  # shared with the SageMaker twin's image venvs


def example_spec(name: str):
    return parse_spec((EXAMPLES / "jobs" / f"{name}.yaml").read_text())


@pytest.fixture(scope="session")
def script_venvs() -> dict[str, dict[str, float]]:
    """Every example's venv, built now if the machine has none (seconds per layer; 0.0: cached)."""
    timings = {}
    for name in ("custom-torch", "custom-jax", "custom-keras"):
        custom = example_spec(name).custom
        assert custom is not None and custom.source is not None
        timings[name] = script_venv(custom, EXAMPLES / custom.source, CACHE)[1]
    return timings


def job(tmp_path: Path, custom: CustomSpec, source: Path, channels: dict[str, Path]) -> TrainingRequest:
    """The local training request Prepare makes for ``custom`` (the source packed into the code channel)."""
    code = tmp_path / "run" / "train" / "source"
    parts = custom_parts(
        custom, source_uri=source.as_uri() + "/", code_uri=code.as_uri(), base_model_id="tiny", instance=None, region=""
    )
    return TrainingRequest(
        run_id="mine-0123456789ab",
        job_name="mine",
        training_job_name="mine-0123456789ab",
        image="local",
        instance_type="local",
        instance_count=1,
        spot=False,
        max_runtime_seconds=600,
        volume_size_gb=0,
        channels={**{name: path.as_uri() for name, path in channels.items()}, **parts.channels},
        hyperparameters=parts.hyperparameters,
        environment={},
        checkpoint_uri=(tmp_path / "run" / "train" / "checkpoints").as_uri(),
        output_uri=(tmp_path / "run" / "train" / "output").as_uri(),
    )


FAILING = {
    "fails": (
        'import json, os, pathlib\nprint(json.dumps({"step": 1, "loss": 1.0}))\n'
        'pathlib.Path(os.environ["SM_OUTPUT_DIR"], "failure").write_text("bad batch shape")\nraise SystemExit(3)\n',
        "exited with code 3; its failure file says:\nbad batch shape",
    ),
    "no-model": ('import json\nprint(json.dumps({"step": 1, "loss": 1.0}))\n', NO_MODEL),
    "no-metrics": (
        'import os, pathlib\npathlib.Path(os.environ["SM_MODEL_DIR"], "w.bin").write_bytes(b"1")\n',
        NO_METRICS,
    ),
}


@pytest.mark.parametrize("kind", sorted(FAILING))
def test_a_failing_script_ends_in_a_recorded_failure_with_its_log_and_a_hint(
    tmp_path: Path, script_venvs: dict, kind: str
) -> None:
    """Given a script that fails (its own failure file, exit code 3), one that saves no model and one that
    prints no metric line (in the JAX example's venv, cached), when it runs as a custom job, then the run
    fails with the reason, its log, and a hint that names what the contract asks."""
    text, reason = FAILING[kind]
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "train.py").write_text(text)
    (tmp_path / "data").mkdir()
    custom = CustomSpec(entry_point="train.py", source="jobs/mine/src/", framework="jax")
    request = job(tmp_path, custom, tmp_path / "src", {"train": tmp_path / "data"})
    with pytest.raises(TrainingFailed) as failed:
        run_script_training(request, custom, tmp_path / "run" / "train", tmp_path / "run" / "model", CACHE)
    cause = str(failed.value)
    assert reason in cause and "custom script train.py" in cause
    log = Path(failed.value.details)
    assert log.is_file() and log.name == "train.log"
    platform = Platform(data_root=tmp_path.as_uri(), artifacts_uri=(tmp_path / "artifacts").as_uri(), local=True)
    failure = steps.record_failure("mine-0123456789ab", "Train", "TrainingFailed", cause, platform, [str(log)])
    recorded = json.loads((tmp_path / "artifacts" / "runs" / "mine-0123456789ab" / "failure.json").read_text())
    assert recorded["log_uris"] == [str(log)] and recorded["hint"] == failure.hint == hint_for("TrainingFailed", cause)
    expected = {"fails": "traceback is in the last log lines", "no-model": "SM_MODEL_DIR", "no-metrics": "JSON lines"}
    assert expected[kind] in failure.hint
    if kind == "fails":
        assert "bad batch shape" in cause  # the script's own failure file (SM_OUTPUT_DIR/failure) or its log tail


def test_the_pytorch_examples_own_loop_saves_an_hf_folder_the_evaluation_reads(
    tmp_path: Path, script_venvs: dict, tiny_model_dir: Path
) -> None:
    """The PyTorch example's script, as Prepare ships it, trains the tiny LM with its own loop: its loss falls,
    its metric lines become the run's history, and its model is an HF folder the evaluation accepts."""
    spec = example_spec("custom-torch")
    assert spec.custom is not None
    custom = spec.custom.model_copy(update={"hyperparameters": {"steps": 6, "eval_every": 3, "learning_rate": 0.01}})
    data = EXAMPLES / "datasets" / "support-qa"
    channels = {"train": data / "train.jsonl", "validation": data / "validation.jsonl", "base_model": tiny_model_dir}
    request = job(tmp_path, custom, EXAMPLES / "jobs" / "custom-torch" / "src", channels)
    model = run_script_training(request, custom, tmp_path / "run" / "train", tmp_path / "run" / "model", CACHE)
    require_hf_folder(model.as_uri())
    lineage = json.loads((model / "trainforge.json").read_text())
    assert lineage["framework"] == "pytorch" and lineage["hyperparameters"]["steps"] == 6
    history = [
        json.loads(line)
        for line in (tmp_path / "run" / "train" / "checkpoints" / "metrics.jsonl").read_text().splitlines()
    ]
    evals = [record["eval_loss"] for record in history if "eval_loss" in record]
    assert len(evals) == 2 and evals[1] < evals[0] and lineage["best_eval_loss"] == min(evals)


@pytest.mark.slow  # two local runs (validate, plan, train, the scripts' own evaluation, register): ~45 s
def test_the_jax_and_keras_examples_run_end_to_end_gated_and_registered(tmp_path: Path, script_venvs: dict) -> None:
    """Each example, run by the local runner as `trainforge run` runs it, passes the same states as any run,
    trains in its framework's venv, is scored by its own evaluation script and gated on that report, and is
    registered Approved."""
    from trainforge.pipeline.local_runner import SUCCESS_PATH, LocalRunner
    from trainforge.settings import Settings

    for name in ("custom-jax", "custom-keras"):
        settings = Settings(workspace=tmp_path / name, data_uri=EXAMPLES.as_uri(), venv_cache=CACHE)
        started = time.monotonic()
        outcome = LocalRunner(settings).run(EXAMPLES / "jobs" / f"{name}.yaml")
        assert outcome.status == "succeeded", outcome.failure
        assert outcome.steps == [s for s in SUCCESS_PATH if s != "Deploy"]  # deploy.target: none
        assert outcome.evaluation is not None and outcome.evaluation.primary == "accuracy"
        assert outcome.evaluation.verdict is not None and outcome.evaluation.verdict.passed
        assert outcome.version is not None and outcome.version.approval == "Approved"
        run = outcome.run_dir
        assert (run / "evaluation" / "report.html").is_file() and (run / "bom.json").is_file()
        assert (
            json.loads((run / "model" / "trainforge.json").read_text())["framework"]
            == example_spec(name).custom.framework
        )
        print(f"{name}: {time.monotonic() - started:.1f} s")


@pytest.mark.slow  # one local run with the built-in evaluation: ~20 s on an idle 2-core machine
def test_the_pytorch_example_runs_end_to_end_with_the_built_in_evaluation(tmp_path: Path, script_venvs: dict) -> None:
    """The PyTorch example through every state, as `trainforge run` runs it: its HF folder scored by the
    built-in evaluation against the tiny base, gated on perplexity and registered."""
    from trainforge.pipeline.local_runner import LocalRunner
    from trainforge.settings import Settings

    settings = Settings(workspace=tmp_path / "ws", data_uri=EXAMPLES.as_uri(), venv_cache=CACHE)
    outcome = LocalRunner(settings).run(EXAMPLES / "jobs" / "custom-torch.yaml")
    assert outcome.status == "succeeded", outcome.failure
    assert outcome.evaluation is not None and outcome.evaluation.primary == "perplexity"
    assert outcome.version is not None and outcome.version.approval == "Approved"


def _wheel(folder: Path, name: str, version: str, module: str) -> Path:
    """A pure-Python wheel written by hand (the format is a zip with three metadata files)."""
    import zipfile

    info = f"{name}-{version}.dist-info"
    path = folder / f"{name}-{version}-py3-none-any.whl"
    files = {
        f"{name}.py": module,
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n",
        f"{info}/WHEEL": "Wheel-Version: 1.0\nGenerator: hand\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    with zipfile.ZipFile(path, "w") as wheel:
        for member, text in files.items():
            wheel.writestr(member, text)
        wheel.writestr(f"{info}/RECORD", "".join(f"{m},,\n" for m in [*files, f"{info}/RECORD"]))
    return path


def test_requirements_install_from_the_sources_wheelhouse_without_an_index(tmp_path: Path, script_venvs: dict) -> None:
    """A requirement that no index has, in the source's wheelhouse: the script's venv installs it from there
    with --no-index (as the job without internet does), over the framework's cached layer, and the script
    imports it."""
    code = tmp_path / "code"
    (code / "wheelhouse").mkdir(parents=True)
    _wheel(code / "wheelhouse", "trainforge_wheelhouse_probe", "1.0", "ANSWER = 42\n")
    (code / "requirements.txt").write_text("trainforge_wheelhouse_probe==1.0\n")
    custom = CustomSpec(entry_point="t.py", source="s/", framework="jax", requirements="requirements.txt")
    venv, _ = script_venv(custom, code, CACHE)
    probe = "import trainforge_wheelhouse_probe as p, jax; print(p.ANSWER)"
    assert subprocess.run([venv / "bin" / "python", "-c", probe], capture_output=True, text=True).stdout == "42\n"
