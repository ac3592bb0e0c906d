"""Scoring an image+text run whose answers are lists of parts (valid multimodal records): the reference is
the answer's text, so exact match and token F1 compare strings. A speech run gates CER on a held-out set in
a language written without word spaces, WER on one written with them."""

from __future__ import annotations

import json

from PIL import Image

from tests.media_data import tone_dataset
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


def test_a_speech_report_gates_cer_for_japanese_and_wer_for_english(tiny_whisper_dir, tmp_path):
    records = [json.loads(line) for line in tone_dataset(tmp_path, copies=1).read_text().splitlines()]
    spec = EvaluationSpec(max_new_tokens=2, generation_samples=0)
    primaries = {}
    for language in ("en", "ja"):
        labelled = [{**record, "language": language} for record in records]
        report = score_media(
            tiny_whisper_dir,
            tiny_whisper_dir,
            tmp_path,
            labelled,
            "speech",
            spec,
            run_id="r",
            base_model="tiny",
            tuned_uri="file:///tuned",
        )
        assert {metric.name for metric in report.metrics} == {"wer", "cer"}
        primaries[language] = report.primary
    assert primaries == {"en": "wer", "ja": "cer"}
