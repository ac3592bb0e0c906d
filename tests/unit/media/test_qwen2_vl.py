"""The Qwen2-VL family on the multimodal path, in one process and a few seconds: a tiny Qwen2-VL built from
its family's config (``training/tiny_media.py``) is trained by the loop on generated shapes (its loss
falls), exported as a folder that names its family's processor, evaluated base vs tuned (perplexity, exact
match) and asked about an image through the server's chat route by the official ``openai`` client. The
whole pipeline's run of the same tier (subprocesses, registry, endpoint) is
tests/integration/test_media_tiers.py's."""

from __future__ import annotations

import base64
import io
import json

import openai
import torch
from fastapi.testclient import TestClient
from PIL import Image

from tests.media_data import SHAPES, draw_shape, shape_dataset
from trainforge.data.records import load_records
from trainforge.evaluation.media_scoring import score_media
from trainforge.media.generation import answer
from trainforge.media.models import media_modality
from trainforge.serving.app import create_app, load_engine
from trainforge.spec import EvaluationSpec
from trainforge.training.config import TrainConfig
from trainforge.training.devices import select_device
from trainforge.training.distributed import World
from trainforge.training.export import export_model
from trainforge.training.loop import run_training
from trainforge.training.media_objectives import build_media_objectives, load_media_trainable


def test_qwen2_vl_trains_evaluates_and_answers_an_image_chat(tmp_path, tiny_qwen2_vl_dir):
    data = tmp_path / "data"
    shape_dataset(data, copies=4)
    assert media_modality(tiny_qwen2_vl_dir) == "vision-text"
    config = TrainConfig(
        data_format="multimodal",
        method="full",
        max_steps=10,
        batch_size=6,
        learning_rate=0.01,
        precision="fp32",
        eval_every=10,
        checkpoint_every=10,
        validation_fraction=0.25,
    )
    torch.manual_seed(0)
    processor, model = load_media_trainable(tiny_qwen2_vl_dir, config)
    objectives = build_media_objectives(processor, data, None, config, model.config)
    history: list[dict] = []
    run_training(
        model,
        objectives.train,
        objectives.validation,
        config,
        select_device("cpu", "fp32"),
        World(0, 1, 0),
        tmp_path / "checkpoints",
        history.append,
    )
    losses = [record["loss"] for record in history if "loss" in record]
    assert len(losses) == 10 and losses[-1] < losses[0] / 2

    tuned = export_model(model, processor, tiny_qwen2_vl_dir, tmp_path / "model", is_lora=False, lineage={})
    assert json.loads((tuned / "processor_config.json").read_text())["processor_class"] == "Qwen2VLProcessor"
    held_out = load_records(data, "multimodal")[1][:3]
    spec = EvaluationSpec(generation_samples=1, max_new_tokens=6)
    report = score_media(
        tiny_qwen2_vl_dir, tuned, data, held_out, "multimodal", spec, run_id="r", base_model="b", tuned_uri="u"
    )
    metrics = {metric.name: metric for metric in report.metrics}
    assert report.primary == "perplexity" and metrics["perplexity"].delta > 0.5
    assert metrics["exact_match"].tuned >= metrics["exact_match"].base and report.forgetting is not None

    picture = io.BytesIO()
    draw_shape(*SHAPES["blue circle"]).save(picture, "PNG")
    url = "data:image/png;base64," + base64.b64encode(picture.getvalue()).decode()
    question = [{"type": "image_url", "image_url": {"url": url}}, {"type": "text", "text": "what is in the picture"}]
    http = TestClient(create_app(load_engine(tuned, name="shapes")))
    sdk = openai.OpenAI(base_url=f"{http.base_url}/v1", api_key="unused", http_client=http, max_retries=0)
    reply = sdk.chat.completions.create(model="shapes", messages=[{"role": "user", "content": question}], max_tokens=8)
    # 10 steps teach the tiny model the answers' words (which shape is which it learns from the pixels later)
    answer = reply.choices[0].message.content
    assert answer and set(answer) <= set("".join(SHAPES))


#: two solid colours: their names can be learnt only from the pixels (the question is the same for both)
COLOURS = {"red": (200, 30, 30), "blue": (30, 30, 200)}


def solid(rgb: tuple[int, int, int], shade: int = 0) -> Image.Image:
    return Image.new("RGB", (32, 32), tuple(max(0, min(255, value + shade)) for value in rgb))


def test_the_answer_follows_the_pixels(tmp_path, tiny_qwen2_vl_dir):
    """Trained briefly on solid red and blue images (nine shades each) named by the assistant, the tiny model
    names held-out shades right; given the other colour's image it names that colour (0 right), and given a
    blank grey one it says one thing for all (chance: half right). So the images reach the model through
    collation, the image tokens and generation, and its answer depends on them."""
    rows = []
    for shade in range(-40, 41, 10):
        for name, rgb in COLOURS.items():
            solid(rgb, shade).save(tmp_path / f"{name}{shade}.png")
            question = [{"type": "image", "image": f"{name}{shade}.png"}, {"type": "text", "text": "what colour"}]
            rows.append({"messages": [{"role": "user", "content": question}, {"role": "assistant", "content": name}]})
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    config = TrainConfig(
        data_format="multimodal",
        method="full",
        max_steps=12,
        batch_size=6,
        learning_rate=0.01,
        precision="fp32",
        eval_every=100,
        checkpoint_every=100,
        validation_fraction=0.0,
    )
    torch.manual_seed(0)
    processor, model = load_media_trainable(tiny_qwen2_vl_dir, config)
    train = build_media_objectives(processor, tmp_path, None, config, model.config).train
    run_training(model, train, None, config, select_device("cpu", "fp32"), World(0, 1, 0), tmp_path / "run", print)
    model.eval()
    question = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "what colour"}]}]
    held_out = [(name, shade) for shade in (-35, 5, 45) for name in COLOURS]  # shades training never saw
    other = {"red": "blue", "blue": "red"}

    def accuracy(picture) -> float:
        said = [answer(model, processor, question, [picture(name, shade)], 6) for name, shade in held_out]
        return sum(reply == name for reply, (name, _) in zip(said, held_out, strict=True)) / len(held_out)

    assert accuracy(lambda name, shade: solid(COLOURS[name], shade)) == 1.0
    assert accuracy(lambda name, shade: solid(COLOURS[other[name]], shade)) == 0.0
    assert accuracy(lambda name, shade: solid((128, 128, 128))) == 0.5
