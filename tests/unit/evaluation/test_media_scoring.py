"""Scoring an image+text run whose answers are lists of parts (valid multimodal records): the reference is
the answer's text, so exact match and token F1 compare strings."""

from __future__ import annotations

from PIL import Image

from trainforge.evaluation.media_scoring import score_media
from trainforge.spec import EvaluationSpec


def test_an_answer_given_as_parts_is_scored_by_its_text(tiny_idefics3_dir, tmp_path):
    Image.new("RGB", (32, 32), "red").save(tmp_path / "red.png")
    record = {
        "messages": [
            {"role": "user", "content": [{"type": "image", "image": "red.png"}, {"type": "text", "text": "Shape?"}]},
            {"role": "assistant", "content": [{"type": "text", "text": "A red square."}]},
        ]
    }
    spec = EvaluationSpec(max_new_tokens=2, generation_samples=1)
    report = score_media(
        tiny_idefics3_dir,
        tiny_idefics3_dir,
        tmp_path,
        [record],
        "multimodal",
        spec,
        run_id="r",
        base_model="tiny",
        tuned_uri="file:///tuned",
    )
    assert {metric.name for metric in report.metrics} >= {"exact_match", "token_f1"}
    assert report.samples[0].reference == "A red square."
