"""What a custom job's training request carries: AWS's framework container per family, the packed source as
the code channel, the hyperparameters as script mode delivers them; and that the whole CreateTrainingJob
request still obeys the twin's table of AWS's rules (isolation, VPC, KMS, bounds unchanged)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from tests.twin.rules import TRAINING, check
from tests.unit.twin.test_rules import CTX, KEY, SAGEMAKER_ROLE, VPC
from trainforge.aws.sagemaker_requests import AwsResources, create_training_job
from trainforge.contracts import TrainingRequest
from trainforge.custom.frameworks import FRAMEWORKS, framework_placement
from trainforge.custom.request import custom_parts
from trainforge.custom.script_mode import SUBMITTED_ARCHIVE, arguments, toolkit_environment
from trainforge.custom.source import pack_source, unpack_source
from trainforge.errors import SpecInvalid
from trainforge.instances import instance_type
from trainforge.spec import CustomSpec

AWS = AwsResources("us-east-1", SAGEMAKER_ROLE, KEY, tuple(VPC["Subnets"]), tuple(VPC["SecurityGroupIds"]))


def source(tmp_path: Path, files: dict[str, str]) -> str:
    folder = tmp_path / "src"
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    return folder.as_uri() + "/"


def script(framework: str = "pytorch", **extra: object) -> CustomSpec:
    return CustomSpec(entry_point="train.py", source="jobs/x/src/", framework=framework, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("framework", "instance", "repository", "device"),
    [
        ("pytorch", "ml.g5.2xlarge", "pytorch-training:2.8.0-gpu-", "cuda"),
        ("pytorch", "ml.m5.xlarge", "pytorch-training:2.8.0-cpu-", "cpu"),
        ("pytorch", "ml.trn1.2xlarge", "pytorch-training-neuronx:", "neuron"),
        ("tensorflow", "ml.g5.xlarge", "tensorflow-training:2.19.0-gpu-", "cuda"),
        ("tensorflow", "ml.c5.xlarge", "tensorflow-training:2.19.0-cpu-", "cpu"),
    ],
)
def test_each_framework_runs_aws_container_for_the_family(framework, instance, repository, device) -> None:
    placed = framework_placement(framework, instance_type(instance), "us-east-1")
    assert placed.image.startswith(f"763104351884.dkr.ecr.us-east-1.amazonaws.com/{repository}")
    assert placed.device == device
    assert placed.environment["TRAINFORGE_NPROC_PER_NODE"] == str(instance_type(instance).processes_per_node)
    assert "NEURON_CC_FLAGS" not in placed.environment  # tunes the built-in loop's graphs; a script sets its own


def test_a_region_with_its_own_registry_and_a_family_without_a_container() -> None:
    image = framework_placement("pytorch", instance_type("ml.g5.xlarge"), "af-south-1").image
    assert image.startswith("626614931356.dkr.ecr.af-south-1.amazonaws.com/pytorch-training:")
    for family in ("ml.g5.xlarge", "ml.m5.xlarge", "ml.trn1.2xlarge"):  # no AWS JAX image has the toolkit
        with pytest.raises(SpecInvalid, match=r"framework jax: .*local mode only.*custom\.image.*sagemaker-training"):
            framework_placement("jax", instance_type(family), "us-east-1")
    with pytest.raises(SpecInvalid, match=r"no tensorflow training container for ml\.trn1\.2xlarge"):
        framework_placement("tensorflow", instance_type("ml.trn1.2xlarge"), "us-east-1")
    assert set(FRAMEWORKS) == {"pytorch", "jax", "tensorflow"}


def test_the_source_packs_to_the_same_bytes_and_unpacks_inside_its_folder(tmp_path: Path) -> None:
    uri = source(tmp_path, {"train.py": "print(1)\n", "lib/util.py": "X = 1\n"})
    first, second = pack_source(script(), uri, offline=True), pack_source(script(), uri, offline=True)
    assert first.archive == second.archive and first.files == ("lib/util.py", "train.py")
    unpacked = unpack_source(first.archive, tmp_path / "code")
    assert (unpacked / "lib" / "util.py").read_text() == "X = 1\n"
    evil = io.BytesIO()
    with tarfile.open(fileobj=evil, mode="w") as tar:
        member = tarfile.TarInfo("../escape.py")
        member.size = 1
        tar.addfile(member, io.BytesIO(b"x"))
    with pytest.raises(tarfile.OutsideDestinationError):
        unpack_source(gzip.compress(evil.getvalue()), tmp_path / "code2")


def test_a_source_without_its_scripts_or_an_offline_job_without_a_wheelhouse_is_refused(tmp_path: Path) -> None:
    uri = source(tmp_path, {"train.py": "", "requirements.txt": "# comment\n--no-index\nnumpy==2.0\n"})
    with pytest.raises(SpecInvalid, match=r"custom\.evaluation_entry_point: evaluate\.py is not in custom\.source"):
        pack_source(script(evaluation_entry_point="evaluate.py"), uri, offline=False)
    with_requirements = script(requirements="requirements.txt")
    assert pack_source(with_requirements, uri, offline=False).requirements == ("numpy==2.0",)
    with pytest.raises(SpecInvalid, match=r"no internet and custom\.source has no wheelhouse/"):
        pack_source(with_requirements, uri, offline=True)
    (tmp_path / "src" / "wheelhouse").mkdir()
    (tmp_path / "src" / "wheelhouse" / "numpy-2.0-py3-none-any.whl").write_bytes(b"wheel")
    assert pack_source(with_requirements, uri, offline=True).requirements == ("numpy==2.0",)


def test_the_one_requirements_file_the_toolkit_installs_is_the_declared_one_or_the_roots(tmp_path: Path) -> None:
    """AWS's toolkit pip-installs only the source's root requirements.txt: a declared file elsewhere is packed
    there (the folder keeps its layout), an undeclared root one is held to the wheelhouse rule too, and a
    root one that differs from the declared one is refused rather than silently replaced."""
    uri = source(tmp_path, {"train.py": "", "reqs/train.txt": "numpy==2.0\n", "wheelhouse/numpy.whl": ""})
    packed = pack_source(script(requirements="reqs/train.txt"), uri, offline=True)
    unpacked = unpack_source(packed.archive, tmp_path / "code")
    assert (unpacked / "requirements.txt").read_text() == "numpy==2.0\n" and (unpacked / "reqs" / "train.txt").is_file()
    assert (packed.requirements_file, packed.files) == (
        "reqs/train.txt",
        ("reqs/train.txt", "train.py", "wheelhouse/numpy.whl"),
    )
    assert not (tmp_path / "src" / "requirements.txt").exists()  # the user's folder is only read

    (tmp_path / "src" / "requirements.txt").write_text("pandas\n")
    with pytest.raises(
        SpecInvalid, match=r"reqs/train\.txt is packed as requirements\.txt .* another requirements\.txt"
    ):
        pack_source(script(requirements="reqs/train.txt"), uri, offline=False)
    (tmp_path / "src" / "wheelhouse" / "numpy.whl").unlink()
    with pytest.raises(SpecInvalid, match=r"custom\.source's requirements\.txt .* no wheelhouse/"):
        pack_source(script(), uri, offline=True)  # not declared, but the toolkit would install it from PyPI
    (tmp_path / "src" / "wheelhouse" / "pandas.whl").write_bytes(b"wheel")
    parts = custom_parts(
        script(),
        source_uri=uri,
        code_uri=(tmp_path / "run").as_uri(),
        base_model_id="tiny",
        instance=instance_type("ml.g5.xlarge"),
        region="us-east-1",
    )
    assert parts.environment["PIP_NO_INDEX"] == "1"  # the toolkit's pip reads the wheelhouse, not an index


def _request(tmp_path: Path, custom: CustomSpec, instance: str) -> dict:
    parts = custom_parts(
        custom,
        source_uri=source(tmp_path, {"train.py": "", "requirements.txt": "numpy\n", "wheelhouse/n.whl": ""}),
        code_uri=(tmp_path / "run" / "train" / "source").as_uri(),
        base_model_id="tiny",
        instance=instance_type(instance),
        region="us-east-1",
    )
    training = TrainingRequest(
        run_id="mine-0123456789ab",
        job_name="mine",
        training_job_name="mine-0123456789ab",
        image=parts.image or "",
        instance_type=instance,
        instance_count=1,
        spot=False,
        max_runtime_seconds=3600,
        volume_size_gb=40,
        channels={"train": "s3://artifacts/runs/mine/data/train/", "code": "s3://artifacts/runs/mine/train/source/"},
        hyperparameters=parts.hyperparameters,
        environment=parts.environment,
        checkpoint_uri="s3://artifacts/runs/mine/train/checkpoints",
        output_uri="s3://artifacts/runs/mine/train/output",
    )
    return create_training_job(training, AWS)


@pytest.mark.parametrize(
    ("framework", "instance"),
    [("pytorch", "ml.g5.2xlarge"), ("tensorflow", "ml.m5.xlarge"), ("pytorch", "ml.trn1.2xlarge")],
)
def test_a_script_mode_request_obeys_the_twins_rules(tmp_path: Path, framework: str, instance: str) -> None:
    custom = script(framework, requirements="requirements.txt", hyperparameters={"epochs": 3, "name": "a b"})
    request = _request(tmp_path, custom, instance)
    assert check(TRAINING, request, CTX) == []
    assert request["EnableNetworkIsolation"] is True and request["VpcConfig"]["Subnets"] == VPC["Subnets"]
    assert request["OutputDataConfig"]["KmsKeyId"] == KEY
    hyperparameters = request["HyperParameters"]
    assert json.loads(hyperparameters["sagemaker_program"]) == "train.py"
    assert json.loads(hyperparameters["sagemaker_submit_directory"]) == SUBMITTED_ARCHIVE
    assert (hyperparameters["epochs"], hyperparameters["name"], hyperparameters["base_model_id"]) == (
        "3",
        '"a b"',
        '"tiny"',
    )
    assert request["Environment"]["PIP_NO_INDEX"] == "1"
    assert request["Environment"]["PIP_FIND_LINKS"] == "/opt/ml/code/wheelhouse"
    assert (tmp_path / "run" / "train" / "source" / "sourcedir.tar.gz").is_file()
    broken = {**request, "InputDataConfig": request["InputDataConfig"][:1]}  # no code channel: nothing to unpack
    assert [v.split(":")[0] for v in check(TRAINING, broken, CTX)] == ["training.script-mode-source-isolated"]


def test_a_container_of_ones_own_gets_plain_hyperparameters_and_no_source(tmp_path: Path) -> None:
    """A container of one's own has no toolkit to decode JSON: its hyperparameters.json holds the values as a
    command line would (``adam``, not ``"adam"``); it is pulled only from the stack's PREFIX-custom/ repositories."""
    image = "123456789012.dkr.ecr.us-east-1.amazonaws.com/trainforge-custom/mine:1"
    hyperparameters = {"optimizer": "adam", "k": 2, "lr": 0.5, "shuffle": True}

    def parts_for(image: str, account: str = "123456789012", region: str = "us-east-1"):
        return custom_parts(
            CustomSpec(image=image, hyperparameters=hyperparameters),
            source_uri=None,
            code_uri=(tmp_path / "c").as_uri(),
            base_model_id="tiny",
            instance=instance_type("ml.trn1.2xlarge"),
            region=region,
            account=account,
            prefix="trainforge",
        )

    parts = parts_for(image)
    assert (parts.image, parts.channels, parts.environment) == (image, {}, {})
    assert parts.hyperparameters == {
        "optimizer": "adam",
        "k": "2",
        "lr": "0.5",
        "shuffle": "true",
        "base_model_id": "tiny",
    }
    for elsewhere, account, region in [
        ("123456789012.dkr.ecr.us-east-1.amazonaws.com/mine:1", "123456789012", "us-east-1"),  # not PREFIX-custom/
        (image.replace("123456789012", "210987654321"), "123456789012", "us-east-1"),  # another account
        (image, "123456789012", "eu-west-1"),  # another region
        (image, "", "us-east-1"),  # an installation that names no account
    ]:
        with pytest.raises(SpecInvalid, match=r"pull only from this stack's account and region.*trainforge-custom/\*"):
            parts_for(elsewhere, account, region)
    with pytest.raises(SpecInvalid, match="local mode has no container runtime"):
        custom_parts(CustomSpec(image=image), source_uri=None, code_uri="", base_model_id="t", instance=None, region="")


def test_the_script_gets_its_hyperparameters_as_arguments_and_sm_variables(tmp_path: Path) -> None:
    hyperparameters = {"epochs": "3", "name": '"a b"', "sagemaker_program": '"train.py"', "plain": "not-json"}
    assert arguments(hyperparameters) == ["--epochs", "3", "--name", "a b", "--plain", "not-json"]
    env = toolkit_environment(tmp_path, tmp_path / "code", hyperparameters, ["train", "validation"])
    assert env["SM_MODEL_DIR"] == str(tmp_path / "model")
    assert env["SM_CHANNEL_VALIDATION"] == str(tmp_path / "input" / "data" / "validation")
    assert json.loads(env["SM_HPS"]) == {"epochs": 3, "name": "a b", "plain": "not-json"}
    assert (env["SM_HP_EPOCHS"], env["SM_HP_NAME"], env["SM_USER_ENTRY_POINT"]) == ("3", "a b", "train.py")
    assert json.loads(env["SM_CHANNELS"]) == ["train", "validation"]


def test_a_model_that_is_not_an_hf_folder_stops_at_evaluation_saying_what_is_expected(tmp_path: Path) -> None:
    from trainforge.custom.model_format import NOT_HF, require_hf_folder
    from trainforge.errors import EvaluationFailed
    from trainforge.pipeline.triage import hint_for

    (tmp_path / "params.msgpack").write_bytes(b"x")
    with pytest.raises(EvaluationFailed) as failed:
        require_hf_folder(tmp_path.as_uri())
    message = str(failed.value)
    assert NOT_HF in message and "config.json" in message and "params.msgpack" in message
    assert "custom.evaluation_entry_point" in message and "save_pretrained" in hint_for("EvaluationFailed", message)
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (tmp_path / name).write_text("{}")
    require_hf_folder(tmp_path.as_uri())


def test_in_aws_an_own_evaluation_script_is_refused_before_any_compute(tmp_path: Path) -> None:
    custom = script("pytorch", evaluation_entry_point="train.py")
    with pytest.raises(SpecInvalid, match=r"evaluation_entry_point runs in local mode"):
        _request(tmp_path, custom, "ml.g5.2xlarge")


def test_a_custom_models_folder_without_lineage_reads_as_no_figures(tmp_path: Path) -> None:
    """In AWS a custom script writes no trainforge.json beside its model: PrepareEvaluation reads no figures
    from it instead of failing the run."""
    from trainforge.contracts import RunRequest
    from trainforge.pipeline import steps
    from trainforge.pipeline.platform import Platform

    platform = Platform(data_root=tmp_path.as_uri(), artifacts_uri=(tmp_path / "a").as_uri(), local=False)
    run = RunRequest(
        run_id="mine-0123456789ab",
        job_name="mine",
        spec_uri="s",
        spec_sha256="0",
        datasets=[],
        trigger="cli",
        artifacts_uri="a",
    )
    (tmp_path / "model").mkdir()
    result = steps.training_result(run, (tmp_path / "model").as_uri(), platform)
    assert (result.metrics, result.tokens_seen) == ({}, 0)
