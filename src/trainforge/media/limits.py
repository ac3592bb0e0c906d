"""What a media file in a training set may be: the limits every check reads (validation, training's decode,
the server's upload), in one place."""

from __future__ import annotations

from dataclasses import dataclass

#: what Whisper's feature extractor expects: every clip is resampled to this rate, mixed to mono
TARGET_SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class MediaLimits:
    #: decompression-bomb guard: more pixels than this is refused from the header, before decoding
    max_image_pixels: int = 36_000_000
    max_image_bytes: int = 20 * 2**20
    #: images in one example (SmolVLM's processor splits each into up to 17 tiles of 64 tokens)
    max_images_per_example: int = 8
    max_audio_bytes: int = 100 * 2**20
    #: Whisper reads 30-second windows; longer clips need segmenting first
    max_audio_seconds: float = 30.0
    min_audio_seconds: float = 0.1
    #: below this a recording has lost the speech band (telephone audio is 8 kHz)
    min_sample_rate: int = 8_000
    max_sample_rate: int = 192_000
    max_channels: int = 2
    #: Whisper's decoder holds 448 positions; characters are a cheap bound checked before tokenizing
    max_transcript_chars: int = 1_000


def base64_chars(size: int) -> int:
    """The most base64 characters ``size`` bytes encode to (3 bytes in 4 characters, the last group padded:
    https://www.rfc-editor.org/rfc/rfc4648#section-4): a longer payload is over ``size`` and is refused
    before it is decoded."""
    return 4 * -(-size // 3)
