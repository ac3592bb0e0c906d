"""The speech and multimodal tiers end to end, one run each: a tiny model built from its family's real
config (``training/tiny_media.py``) is trained by the local runner on generated data (tones with their
names; shapes with their names), its loss falls, it is evaluated (WER/CER; perplexity, exact match),
registered, served, and the official ``openai`` client transcribes a wav and sends a chat with an image."""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path

import openai
import pytest

from tests.media_data import SHAPES, draw_shape, shape_dataset, tone_dataset
from trainforge.pipeline.local_runner import SUCCESS_PATH, LocalRunner
from trainforge.serving.deployers.local import free_port
from trainforge.settings import Settings

SPEC = """name: {name}
base_model: {base}
method: full
data: {{train: datasets/{name}/train.jsonl, validation_fraction: 0.25}}
hyperparameters: {{max_steps: {steps}, batch_size: 6, learning_rate: {lr}, precision: fp32, eval_every: {steps}, checkpoint_every: {steps}}}
evaluation: {{min_improvement: {min_improvement}, max_forgetting: 100.0, generation_samples: 2, max_new_tokens: 6}}
deploy: {{target: local}}
"""


def run(tmp_path: Path, name: str, base: str, make_data, steps: int, lr: float, min_improvement: float):
    data = tmp_path / "ws" / "data"
    (data / "jobs").mkdir(parents=True)
    make_data(data / "datasets" / name)
    spec = data / "jobs" / f"{name}.yaml"
    spec.write_text(SPEC.format(name=name, base=base, steps=steps, lr=lr, min_improvement=min_improvement))
    runner = LocalRunner(Settings(workspace=tmp_path / "ws", data_uri=data.as_uri()), port=free_port(18100))
    return runner, runner.run(spec)


def losses(outcome) -> list[float]:
    lines = (outcome.run_dir / "train/checkpoints/metrics.jsonl").read_text().splitlines()
    return [record["loss"] for record in map(json.loads, lines) if "loss" in record]


@pytest.fixture
def stop_endpoints():
    runners = []
    yield runners
    for runner, name in runners:
        runner._deployer().stop(name)


@pytest.mark.slow  # the whole pipeline once: train, evaluate and serve each start a process (torch): ~60 s on 2 cores
def test_speech_tier_trains_evaluates_registers_and_transcribes(tmp_path, stop_endpoints):
    runner, outcome = run(tmp_path, "calls", "tiny-speech", tone_dataset, steps=30, lr=0.005, min_improvement=0.5)
    stop_endpoints.append((runner, "calls"))
    assert outcome.status == "succeeded", (outcome.failure, outcome.evaluation and outcome.evaluation.verdict)
    assert outcome.steps == list(SUCCESS_PATH)
    report = outcome.dataset
    assert report.format == "speech" and report.audio_hours == pytest.approx(24 * 1.5 / 3600, rel=1e-3)
    history = losses(outcome)
    assert history[-1] < history[0] / 2
    evaluation = outcome.evaluation
    wer = next(m for m in evaluation.metrics if m.name == "wer")
    assert evaluation.primary == "wer" and wer.base == 1.0 and wer.tuned <= 0.5
    assert {m.name for m in evaluation.metrics} == {"wer", "cer"} and evaluation.forgetting is None
    assert any("forgetting not checked" in reason for reason in evaluation.verdict.reasons)
    assert [v.approval for v in runner._registry().versions("calls")] == ["Approved"]

    # the client closes its connection, so the endpoint's process stops at once in teardown
    with openai.OpenAI(base_url=f"{outcome.deployment.url}/v1", api_key="unused", max_retries=0) as client:
        clip = outcome.run_dir / "data" / "train" / "clips" / "high-0.wav"
        with clip.open("rb") as audio:  # no language: the model's default, the one it was tuned on (en)
            text = client.audio.transcriptions.create(model="calls", file=audio).text
        assert text == "high"
        with pytest.raises(openai.BadRequestError) as bad:
            client.audio.transcriptions.create(model="calls", file=("broken.wav", b"RIFF0000WAVEjunk"))
    assert bad.value.body["param"] == "file" and "WAV without a fmt chunk" in bad.value.body["message"]


@pytest.mark.slow  # the whole pipeline once: train, evaluate and serve each start a process (torch): ~50 s on 2 cores
def test_multimodal_tier_trains_evaluates_registers_and_answers_an_image(tmp_path, stop_endpoints):
    runner, outcome = run(tmp_path, "shapes", "tiny-multimodal", shape_dataset, steps=30, lr=0.005, min_improvement=0.5)
    stop_endpoints.append((runner, "shapes"))
    assert outcome.status == "succeeded", (outcome.failure, outcome.evaluation and outcome.evaluation.verdict)
    assert outcome.dataset.format == "multimodal" and outcome.dataset.images == 24
    history = losses(outcome)
    assert history[-1] < history[0] / 2
    evaluation = outcome.evaluation
    names = {m.name: m for m in evaluation.metrics}
    assert evaluation.primary == "perplexity" and names["perplexity"].delta > 0.5
    assert names["exact_match"].tuned >= names["exact_match"].base and evaluation.forgetting is not None

    picture = io.BytesIO()
    draw_shape(*SHAPES["blue circle"]).save(picture, "PNG")
    url = "data:image/png;base64," + base64.b64encode(picture.getvalue()).decode()
    question = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "what is in the picture"}]
    web = [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}]
    with openai.OpenAI(base_url=f"{outcome.deployment.url}/v1", api_key="unused", max_retries=0) as client:
        reply = client.chat.completions.create(
            model="shapes", messages=[{"role": "user", "content": question}], max_tokens=8
        )
        with pytest.raises(openai.BadRequestError) as bad:
            client.chat.completions.create(model="shapes", messages=[{"role": "user", "content": web}])
    # 30 steps teach the tiny model the answers' words, not yet which shape is which (exact match above)
    answer = reply.choices[0].message.content
    assert answer and set(answer) <= set("".join(SHAPES))
    assert bad.value.body["param"] == "messages[0].content[1].image_url.url"
