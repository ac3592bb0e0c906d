"""The engine behind a speech or image+text model's routes: the processor and model loaded as training
and evaluation load them, answers decoded greedily by the very functions evaluation scored
(``media/generation.py``), one at a time under a lock (as ``engine.Engine`` does for text)."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import torch

from trainforge.media.decode import decode_audio, decode_image
from trainforge.media.generation import answer, load_media_model, transcribe
from trainforge.media.headers import MediaError
from trainforge.media.limits import MediaLimits
from trainforge.media.models import media_modality
from trainforge.media.references import data_uri


class MediaEngine:
    def __init__(self, model_dir: Path, name: str | None = None, device: str | None = None) -> None:
        self.model_dir = model_dir
        self.name = name or model_dir.name
        self.modality = media_modality(model_dir)
        self.device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        self.processor, self.model = load_media_model(
            model_dir, torch.bfloat16 if self.device == "cuda" else torch.float32
        )
        self.model.to(self.device).eval()
        self.created = int(time.time())
        self.limits = MediaLimits()
        self._lock = threading.Lock()

    def transcribe(self, audio: bytes, language: str | None, max_new_tokens: int = 128) -> tuple[str, float]:
        """(transcript, seconds of audio); a MediaError says what is wrong with the file."""
        clip = decode_audio(audio, self.limits)
        with self._lock:
            return transcribe(self.model, self.processor, clip.samples, language, max_new_tokens), clip.seconds

    def chat(self, messages: list[dict[str, Any]], max_new_tokens: int) -> str:
        """The reply to OpenAI-style messages whose content may hold ``image_url`` parts with data URIs
        (the server fetches nothing); a ValueError names the part at fault as ``messages[i].content[j]``."""
        rendered: list[dict[str, Any]] = []
        images: list[Any] = []
        for index, message in enumerate(messages):
            content = message["content"]
            parts = [{"type": "text", "text": content}] if isinstance(content, str) else content
            converted = []
            for part_index, part in enumerate(parts):
                where = f"messages[{index}].content[{part_index}]"
                if not isinstance(part, dict):
                    raise ValueError(f"{where}: a part is an object with a type (text or image_url)")
                if part.get("type") == "text":
                    converted.append({"type": "text", "text": str(part.get("text", ""))})
                    continue
                if part.get("type") not in ("image_url", "image"):
                    raise ValueError(f"{where}: a part's type is text or image_url, got {part.get('type')!r}")
                if len(images) == self.limits.max_images_per_example:
                    raise ValueError(f"messages: at most {self.limits.max_images_per_example} images per chat")
                images.append(self._image(part, where))
                converted.append({"type": "image"})
            rendered.append({"role": message["role"], "content": converted})
        if self.modality != "vision-text" and images:
            raise ValueError("messages: this model reads no images")
        with self._lock:
            return answer(self.model, self.processor, rendered, images, max_new_tokens)

    def _image(self, part: dict[str, Any], where: str) -> Any:
        url = part.get("image_url")
        reference = url.get("url") if isinstance(url, dict) else url if url is not None else part.get("image")
        if not isinstance(reference, str):
            raise ValueError(f"{where}.image_url.url: an image part needs a url")
        try:
            inline = data_uri(reference, self.limits.max_image_bytes)
            if inline is None:
                raise MediaError(
                    "media_outside_store", "only data:image/...;base64 URLs are accepted: this server fetches nothing"
                )
            return decode_image(inline.data, self.limits)
        except MediaError as exc:
            raise ValueError(f"{where}.image_url.url: {exc}") from exc
