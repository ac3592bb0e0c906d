"""The speech and image+text routes through the official ``openai`` client (over the app in-process):
a transcription of an uploaded wav, a chat with an image part, /invocations for both, and a 400 naming
the part for each bad medium. The tiny models are untrained: these tests hold the contract, not the
answers (the end-to-end runs in tests/integration/test_media_tiers.py check those)."""

from __future__ import annotations

import base64
import io
import shutil
import struct
import zlib

import numpy as np
import openai
import pytest
import soundfile
from fastapi.testclient import TestClient
from PIL import Image

from trainforge.media.generation import load_media_model, save_speech_defaults, speech_prefix
from trainforge.media.limits import MediaLimits
from trainforge.serving.app import create_app, load_engine
from trainforge.serving.media_engine import MediaEngine


@pytest.fixture(scope="module")
def speech(tiny_whisper_dir):
    engine = load_engine(tiny_whisper_dir, name="calls")
    return engine, TestClient(create_app(engine))


@pytest.fixture(scope="module")
def vision(tiny_idefics3_dir):
    engine = load_engine(tiny_idefics3_dir, name="shapes")
    return engine, TestClient(create_app(engine))


def client(http: TestClient) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{http.base_url}/v1", api_key="unused", http_client=http, max_retries=0)


def wav_bytes(seconds: float = 0.5, rate: int = 16_000) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, np.sin(np.arange(int(seconds * rate)) / 10).astype(np.float32), rate, format="WAV")
    return out.getvalue()


def png_url(size: tuple[int, int] = (40, 30)) -> str:
    out = io.BytesIO()
    Image.new("RGB", size, "red").save(out, "PNG")
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def test_a_media_folder_gets_the_media_engine(speech, vision):
    assert isinstance(speech[0], MediaEngine) and speech[0].modality == "speech"
    assert vision[0].modality == "vision-text"


def test_transcriptions_as_the_openai_sdk_sends_them(speech):
    _, http = speech
    sdk = client(http)
    result = sdk.audio.transcriptions.create(model="calls", file=("clip.wav", wav_bytes()), language="en")
    assert isinstance(result.text, str)
    assert isinstance(
        sdk.audio.transcriptions.create(model="calls", file=("c.wav", wav_bytes()), response_format="text"), str
    )
    with pytest.raises(openai.BadRequestError) as empty:
        sdk.audio.transcriptions.create(model="calls", file=("c.wav", wav_bytes(seconds=0)))
    assert empty.value.body["param"] == "file" and "zero length" in empty.value.body["message"]
    with pytest.raises(openai.BadRequestError) as garbage:
        sdk.audio.transcriptions.create(model="calls", file=("c.wav", b"not audio at all"))
    assert garbage.value.body["param"] == "file"
    with pytest.raises(openai.NotFoundError):
        sdk.audio.transcriptions.create(model="other", file=("c.wav", wav_bytes()))
    reply = http.post("/invocations", json={"audio": base64.b64encode(wav_bytes()).decode(), "language": "en"})
    assert reply.status_code == 200 and "text" in reply.json()
    assert http.post("/invocations", json={"audio": "%%%"}).json()["error"]["param"] == "audio"
    assert http.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "hi"}]}).status_code == 400


def test_chat_with_an_image_part_and_each_bad_part_named(vision):
    _, http = vision
    sdk = client(http)
    parts = [{"type": "image_url", "image_url": {"url": png_url()}}, {"type": "text", "text": "what shape"}]
    reply = sdk.chat.completions.create(model="shapes", messages=[{"role": "user", "content": parts}], max_tokens=4)
    assert isinstance(reply.choices[0].message.content, str)
    ihdr = struct.pack(">IIBBBBB", 50_000, 50_000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + ihdr + struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    bad = {
        "data:image/png;base64," + base64.b64encode(bomb).decode(): "pixels is over",
        "https://example.com/cat.png": "fetches nothing",
        "data:image/png;base64,@@@": "base64",
    }
    for url, why in bad.items():
        content = [{"type": "text", "text": "hi"}, {"type": "image_url", "image_url": {"url": url}}]
        with pytest.raises(openai.BadRequestError) as error:
            sdk.chat.completions.create(model="shapes", messages=[{"role": "user", "content": content}])
        assert (
            error.value.body["param"] == "messages[0].content[1].image_url.url" and why in error.value.body["message"]
        )
    invoked = http.post("/invocations", json={"messages": [{"role": "user", "content": parts}], "max_tokens": 4})
    assert invoked.status_code == 200 and invoked.json()["object"] == "chat.completion"


def test_an_upload_over_the_limit_is_refused_before_it_is_read(speech, monkeypatch):
    engine, http = speech
    monkeypatch.setattr(engine, "limits", MediaLimits(max_audio_bytes=1_000))
    with pytest.raises(openai.APIStatusError) as error:
        client(http).audio.transcriptions.create(model="calls", file=("c.wav", wav_bytes()))
    assert error.value.status_code == 413 and error.value.body["param"] == "file"


def test_base64_audio_over_the_upload_limit_is_refused_before_it_is_decoded(speech, monkeypatch):
    engine, http = speech
    limit = 999  # 1332 base64 characters hold at most 999 bytes, one more character is over
    monkeypatch.setattr(engine, "limits", MediaLimits(max_audio_bytes=limit))
    over = "A" * 1336  # not even valid audio: the size alone refuses it, before b64decode
    for audio in (over, "data:audio/wav;base64," + over, base64.b64encode(wav_bytes()).decode()):
        reply = http.post("/invocations", json={"audio": audio})
        assert reply.status_code == 413 and reply.json()["error"]["param"] == "audio"
        assert "999 bytes" in reply.json()["error"]["message"]
    # at the limit the payload is decoded, and what it holds is judged as an upload is
    fits = http.post("/invocations", json={"audio": base64.b64encode(b"x" * limit).decode()})
    assert fits.status_code == 400 and fits.json()["error"]["param"] == "audio"


def test_a_transcription_without_a_language_is_decoded_in_the_model_default(tiny_whisper_dir, tmp_path, monkeypatch):
    folder = shutil.copytree(tiny_whisper_dir, tmp_path / "tuned")
    save_speech_defaults(folder, load_media_model(folder)[0].tokenizer, "ja")  # as training writes it
    engine = load_engine(folder, name="calls")
    prompts, generate = [], engine.model.generate

    def recorded(**kwargs):  # the model's own generate, the prompt forced on it noted (``force_prompt``)
        config = kwargs["generation_config"]
        prompts.append([config.decoder_start_token_id] + [token for _, token in config.forced_decoder_ids])
        return generate(**kwargs)

    monkeypatch.setattr(engine.model, "generate", recorded)
    sdk = client(TestClient(create_app(engine)))
    verbose = sdk.audio.transcriptions.create(
        model="calls", file=("c.wav", wav_bytes()), response_format="verbose_json"
    )
    sdk.audio.transcriptions.create(model="calls", file=("c.wav", wav_bytes()), language="en")
    tokenizer = engine.processor.tokenizer
    assert verbose.language == "ja"
    assert prompts == [speech_prefix(tokenizer, "ja"), speech_prefix(tokenizer, "en")]  # a request's own wins


def test_an_english_only_model_answers_another_language_with_a_400_naming_it(speech, monkeypatch):
    engine, http = speech
    monkeypatch.setattr(engine.model.generation_config, "is_multilingual", False, raising=False)  # a *.en model
    sdk = client(http)
    assert isinstance(
        sdk.audio.transcriptions.create(model="calls", file=("c.wav", wav_bytes()), language="en").text, str
    )
    with pytest.raises(openai.BadRequestError) as error:
        sdk.audio.transcriptions.create(model="calls", file=("c.wav", wav_bytes()), language="ja")
    assert error.value.body["param"] == "language" and "English-only" in error.value.body["message"]


def test_too_many_images_and_a_part_that_is_no_object_are_named(vision):
    _, http = vision
    sdk = client(http)
    images = [{"type": "image_url", "image_url": {"url": png_url()}}] * (MediaLimits().max_images_per_example + 1)
    for content, param in ((images, "messages"), (["just a string"], "messages[0].content[0]")):
        with pytest.raises(openai.BadRequestError) as error:
            sdk.chat.completions.create(model="shapes", messages=[{"role": "user", "content": content}])
        assert error.value.body["param"] == param
