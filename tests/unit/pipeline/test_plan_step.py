"""The Plan step: plan.json beside the reports, a refusal before any SageMaker call, and the Lambda's quota
reading (Service Quotas' ListServiceQuotas, on botocore's Stubber: moto implements it for VPC only)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from benchmarks.media_memory import SMOLVLM_256M
from tests.conftest import chat, load_handler
from tests.unit.planning.shapes import LLAMA_8B
from trainforge.contracts import DatasetReport, Plan
from trainforge.errors import PlanRefused
from trainforge.pipeline.admission import admit, record_admission
from trainforge.pipeline.layout import RunLayout
from trainforge.pipeline.plan_step import handle_plan, read_quotas, service_quotas_client
from trainforge.pipeline.planned import planned_vs_actual_at
from trainforge.settings import Settings

SPEC = """name: planned
base_model: {base}
method: {method}
data: {{train: datasets/chat/train.jsonl, validation_fraction: 0.2}}
hyperparameters: {{max_steps: 10, batch_size: 4, max_seq_len: 128}}
compute: {{instance_type: ml.g5.xlarge, spot: false}}
deploy: {{target: none}}
"""


def _quota(name: str, code: str, value: float) -> dict:
    return {"ServiceCode": "sagemaker", "QuotaName": name, "QuotaCode": code, "Value": value}


def _stubbed(applied: list[list[dict]], defaults: list[list[dict]] | None = None) -> tuple[object, Stubber]:
    """Service Quotas answering the applied quotas' pages, then (unless None) the defaults' pages."""
    client = boto3.client("service-quotas", region_name="us-east-1")
    stubber = Stubber(client)
    listings = [("list_service_quotas", applied)]
    if defaults is not None:
        listings.append(("list_aws_default_service_quotas", defaults))
    for operation, pages in listings:
        for index, quotas in enumerate(pages):
            request = {"ServiceCode": "sagemaker"} | ({"NextToken": str(index)} if index else {})
            answer = {"Quotas": quotas} | ({"NextToken": str(index + 1)} if index + 1 < len(pages) else {})
            stubber.add_response(operation, answer, request)
    return client, stubber


def test_quotas_are_read_across_every_page(aws_env):
    client, stubber = _stubbed(
        [
            [_quota("ml.g5.xlarge for training job usage", "L-1", 2)],
            [_quota("ml.m5.xlarge for endpoint usage", "L-2", 0)],
        ],
        [[], []],
    )
    with stubber:
        assert read_quotas(client) == {
            "ml.g5.xlarge for training job usage": ("L-1", 2.0),
            "ml.m5.xlarge for endpoint usage": ("L-2", 0.0),
        }
        stubber.assert_no_pending_responses()


def test_a_quota_left_at_its_default_is_read_from_the_defaults(aws_env):
    """ListServiceQuotas leaves out a quota never changed from its default; the applied value wins where
    there is one."""
    client, stubber = _stubbed(
        [[_quota("ml.g5.xlarge for training job usage", "L-1", 2)]],
        [
            [
                _quota("ml.g5.xlarge for training job usage", "L-1", 0),
                _quota("ml.g5.xlarge for processing job usage", "L-2", 0),
            ]
        ],
    )
    with stubber:
        assert read_quotas(client) == {
            "ml.g5.xlarge for training job usage": ("L-1", 2.0),
            "ml.g5.xlarge for processing job usage": ("L-2", 0.0),
        }
        stubber.assert_no_pending_responses()


@pytest.fixture
def run(tmp_path: Path, tiny_model_dir: Path, aws_env, monkeypatch):
    """A run admitted on file:// roots, its base model under base-models/, its dataset report, AWS settings."""

    def admitted(base: str = "tiny", method: str = "lora", config: dict | None = None):
        data, artifacts = tmp_path / "data", tmp_path / "artifacts"
        rows = [chat(f"question {i}", f"answer number {i}") for i in range(50)]
        (data / "datasets/chat").mkdir(parents=True, exist_ok=True)
        (data / "datasets/chat/train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        model_id = "tiny-llama-test" if base == "tiny" else "llama-3.1-8b-instruct"
        folder = artifacts / "base-models" / model_id
        shutil.copytree(tiny_model_dir, folder, dirs_exist_ok=True)
        if config is not None:  # a config alone, no weights: the plan of a model not trained here
            (folder / "config.json").write_text(json.dumps(config))
            (folder / "model.safetensors").unlink()
        text = SPEC.format(base=base, method=method).encode()
        request, spec = admit(
            (data / "jobs/planned.yaml").as_uri(), text, None, data.as_uri(), artifacts.as_uri(), "upload"
        )
        record_admission(request, spec, artifacts.as_uri())
        from trainforge.data import ValidationOptions, validate_dataset
        from trainforge.local.file_store import FileStore

        options = ValidationOptions.from_spec(spec, tokenizer_file=folder / "tokenizer.json")
        report = validate_dataset([r.uri for r in request.datasets], FileStore(), options)
        monkeypatch.setenv("AWS_REGION", "us-east-1")
        settings = Settings(data_uri=data.as_uri(), artifacts_uri=artifacts.as_uri())
        return request, report, settings

    return admitted


def _event(request, report: DatasetReport) -> dict:
    return {"run": request.model_dump(mode="json"), "dataset": report.model_dump(mode="json")}


def test_the_lambda_plans_with_the_quotas_and_keeps_the_plan_beside_the_reports(run):
    request, report, settings = run()
    client, stubber = _stubbed([[_quota("ml.g5.xlarge for training job usage", "L-1", 1)]], [[]])
    with stubber:
        answer = handle_plan(_event(request, report), settings, client)
    layout = RunLayout(settings.resolved_artifacts_uri(), request.run_id)
    assert answer["plan_uri"] == layout.plan and answer["instance_type"] == "ml.g5.xlarge"
    assert answer["verdict"] == "fits" and answer["total_usd_high"] > 0
    plan = Plan.model_validate_json(Path(layout.plan.removeprefix("file://")).read_text())
    assert plan.run_id == request.run_id and plan.work.examples == 40  # 50 chats, 20% held out
    assert plan.quotas[0].status == "ok" and plan.quotas[1].status == "unknown"


def test_an_8b_full_fine_tune_on_one_24_gib_gpu_is_refused_with_its_plan_written(run):
    request, report, settings = run(base="pro", method="full", config=LLAMA_8B)
    client, stubber = _stubbed([[]], [[]])
    with stubber, pytest.raises(PlanRefused, match=r"does not fit ml.g5.xlarge.*instead: compute.instance_type: ml\."):
        handle_plan(_event(request, report), settings, client)
    layout = RunLayout(settings.resolved_artifacts_uri(), request.run_id)
    plan = Plan.model_validate_json(Path(layout.plan.removeprefix("file://")).read_text())
    assert plan.requested.verdict == "does_not_fit" and plan.refusals


def test_an_image_text_models_tiles_come_from_the_processor_config_in_its_folder(run):
    """The plan reads the base model's processor_config.json beside its config.json: an image processor that
    does not split makes one tile of each image, not SmolVLM's 17."""
    request, report, settings = run(base="pro", config=SMOLVLM_256M)
    folder = Path(settings.resolved_artifacts_uri().removeprefix("file://")) / "base-models/llama-3.1-8b-instruct"
    (folder / "processor_config.json").write_text(json.dumps({"image_processor": {"do_image_splitting": False}}))
    client, stubber = _stubbed([[]], [[]])
    with stubber:
        handle_plan(_event(request, report), settings, client)
    layout = RunLayout(settings.resolved_artifacts_uri(), request.run_id)
    plan = Plan.model_validate_json(Path(layout.plan.removeprefix("file://")).read_text())
    assert any("each image's tiles (up to 1) of 1,024 patches, 64 image tokens per tile" in n for n in plan.notes)


def test_a_quota_service_quotas_could_not_read_is_left_unjudged(run):
    """An entry with an ErrorReason and no Value (in either list) is neither a crash nor a value."""
    request, report, settings = run()
    unread = {
        "ServiceCode": "sagemaker",
        "QuotaName": "ml.g5.xlarge for training job usage",
        "QuotaCode": "L-1",
        "ErrorReason": {"ErrorCode": "DEPENDENCY_THROTTLING_ERROR", "ErrorMessage": "throttled"},
    }
    client, stubber = _stubbed([[unread]], [[unread, _quota("ml.g5.xlarge for processing job usage", "L-2", 4)]])
    with stubber:
        handle_plan(_event(request, report), settings, client)
    plan = Plan.model_validate_json(
        Path(RunLayout(settings.resolved_artifacts_uri(), request.run_id).plan.removeprefix("file://")).read_text()
    )
    assert [(q.name, q.status) for q in plan.quotas] == [
        ("ml.g5.xlarge for training job usage", "unknown"),
        ("ml.g5.xlarge for processing job usage", "ok"),
    ]
    assert not plan.refusals


def test_a_new_accounts_default_of_0_refuses_the_run(run):
    """The quota of a new account, never raised, is only in the defaults: 0 GPUs for training refuses."""
    request, report, settings = run()
    client, stubber = _stubbed([[]], [[_quota("ml.g5.xlarge for training job usage", "L-1", 0)]])
    with stubber, pytest.raises(PlanRefused, match=r"'ml.g5.xlarge for training job usage' \(L-1\) is 0"):
        handle_plan(_event(request, report), settings, client)


def test_unreadable_quotas_are_a_note_not_a_failure(run):
    request, report, settings = run()
    client, stubber = _stubbed([])
    stubber.add_client_error("list_service_quotas", "AccessDeniedException", "not allowed")
    with stubber:
        handle_plan(_event(request, report), settings, client)
    plan = Plan.model_validate_json(
        Path(RunLayout(settings.resolved_artifacts_uri(), request.run_id).plan.removeprefix("file://")).read_text()
    )
    assert any("quotas not read from Service Quotas" in note for note in plan.notes)


def test_the_quota_client_gives_up_long_before_the_plan_function_times_out(aws_env):
    """Without a network path to Service Quotas botocore's defaults (60 s connect, 60 s read, 5 attempts)
    wait past the Plan function's 300 s; the plan's own client gives up in well under a minute."""
    config = service_quotas_client().meta.config
    attempts = config.retries["total_max_attempts"]
    assert config.retries["mode"] == "standard" and attempts <= 2
    assert attempts * (config.connect_timeout + config.read_timeout) <= 60


def test_an_unreachable_service_quotas_is_a_note_not_a_failure(run, monkeypatch):
    request, report, settings = run()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SERVICE_QUOTAS", "http://127.0.0.1:9")  # nothing listens there
    handle_plan(_event(request, report), settings)
    plan = Plan.model_validate_json(
        Path(RunLayout(settings.resolved_artifacts_uri(), request.run_id).plan.removeprefix("file://")).read_text()
    )
    assert any("quotas not read from Service Quotas" in note for note in plan.notes)


def test_the_function_calls_the_handler(run, monkeypatch):
    request, report, settings = run()
    monkeypatch.setenv("TRAINFORGE_ARTIFACTS_URI", settings.artifacts_uri)
    monkeypatch.setenv("TRAINFORGE_DATA_URI", settings.data_uri)
    calls = []
    monkeypatch.setattr("trainforge.pipeline.plan_step.handle_plan", lambda event, s: calls.append(event) or {})
    from tests.conftest import FakeContext

    load_handler("plan_run")(_event(request, report), FakeContext())
    assert calls and calls[0]["run"]["run_id"] == request.run_id


def test_no_plan_means_nothing_to_compare(tmp_path):
    assert planned_vs_actual_at(tmp_path.as_uri(), "run-1", None) == []


def test_a_refusal_is_triaged_as_the_plan_not_by_the_words_its_reasons_use():
    from trainforge.errors import PlanRefused as Refused
    from trainforge.pipeline.triage import hint_for

    cause = "the SageMaker quota 'ml.g5.xlarge for training job usage' is 0; out of memory on ml.g5.xlarge"
    assert hint_for("PlanRefused", cause) == Refused.hint
