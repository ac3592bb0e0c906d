"""Full decoding of audio (soundfile/libsndfile: WAV, FLAC, OGG Vorbis/Opus, MP3 since libsndfile 1.1)
and images (Pillow), after the header check: what the local validator, training and the server run. The
validation Lambda has neither library and stops at ``headers.py``.

Audio comes out as float32 mono at 16 kHz (channels averaged; resampled band-limited through the FFT,
which for clips of at most 30 s is exact enough and needs nothing beyond numpy).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainforge.media.headers import MediaError, audio_header, image_header
from trainforge.media.limits import TARGET_SAMPLE_RATE, MediaLimits


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray
    #: the file's own rate and channel count, before resampling and mixing
    sample_rate: int
    channels: int

    @property
    def seconds(self) -> float:
        return len(self.samples) / TARGET_SAMPLE_RATE


def resample(samples: np.ndarray, rate: int, target: int = TARGET_SAMPLE_RATE) -> np.ndarray:
    """Band-limited resampling of a mono signal: its spectrum truncated or zero-padded to the new length."""
    if rate == target or len(samples) == 0:
        return samples.astype(np.float32, copy=False)
    length = max(1, round(len(samples) * target / rate))
    spectrum = np.fft.rfft(samples.astype(np.float64))
    bins = length // 2 + 1
    kept = np.zeros(bins, dtype=np.complex128)
    kept[: min(bins, len(spectrum))] = spectrum[:bins]
    return (np.fft.irfft(kept, length) * (length / len(samples))).astype(np.float32)


def check_audio_format(rate: int | None, channels: int | None, limits: MediaLimits) -> None:
    if rate is not None and not limits.min_sample_rate <= rate <= limits.max_sample_rate:
        raise MediaError(
            "wrong_sample_rate",
            f"sample rate {rate} Hz is outside {limits.min_sample_rate}-{limits.max_sample_rate} Hz "
            f"(clips are resampled to {TARGET_SAMPLE_RATE} Hz; below {limits.min_sample_rate} Hz the speech band is lost)",
        )
    if channels is not None and not 1 <= channels <= limits.max_channels:
        raise MediaError("too_many_channels", f"{channels} channels: mix down to mono or stereo first")


def check_audio_length(seconds: float, limits: MediaLimits) -> None:
    if seconds <= 0:
        raise MediaError("empty_audio", "the audio holds no samples (zero length)")
    if seconds < limits.min_audio_seconds:
        raise MediaError("audio_too_short", f"{seconds:.3f} s is shorter than {limits.min_audio_seconds} s")
    if seconds > limits.max_audio_seconds:
        raise MediaError(
            "audio_too_long", f"{seconds:.1f} s is over {limits.max_audio_seconds:.0f} s: cut it into segments"
        )


#: libsndfile's ``frames`` where the container does not say how long it is (SF_COUNT_MAX)
UNKNOWN_FRAMES = 2**63 - 1
#: frames read per block, so a file's length is judged before its samples pile up
BLOCK_FRAMES = 1 << 16


def _read_block(sound: Any, frames: int) -> np.ndarray:
    """Up to ``frames`` float32 frames from libsndfile itself: ``SoundFile.read`` seeks to its own count
    after each read, and libFLAC cannot seek to the end of a stream of unknown length, so the last block
    of such a file would fail after it was read."""
    import soundfile

    out = np.empty((frames, sound.channels), dtype=np.float32)
    read = soundfile._snd.sf_readf_float(sound._file, soundfile._ffi.cast("float *", out.ctypes.data), frames)
    if read < 0 or soundfile._snd.sf_error(sound._file):
        raise RuntimeError(soundfile._ffi.string(soundfile._snd.sf_strerror(sound._file)).decode(errors="replace"))
    return out[:read]


def decode_audio(data: bytes, limits: MediaLimits = MediaLimits()) -> Audio:
    """16 kHz mono float32 samples of a WAV, FLAC, OGG or MP3 file, or a MediaError saying why not.

    A compressed file is small for its length (300 s of Opus fit in 69 KB), so its length is judged from
    the decoder's header before reading, and the samples are read in blocks up to one second past the
    limit: a file of unknown or false length never decodes whole."""
    import soundfile

    if len(data) > limits.max_audio_bytes:
        raise MediaError("media_too_large", f"{len(data)} bytes is over {limits.max_audio_bytes}")
    header = audio_header(data)
    check_audio_format(header.sample_rate, header.channels, limits)
    if header.seconds is not None:
        check_audio_length(header.seconds, limits)
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as sound:
            rate, channels = sound.samplerate, sound.channels
            check_audio_format(rate, channels, limits)
            if sound.frames != UNKNOWN_FRAMES:
                check_audio_length(sound.frames / rate, limits)
            cap = int((limits.max_audio_seconds + 1) * rate)
            blocks, total = [], 0
            while total <= cap:
                block = _read_block(sound, min(BLOCK_FRAMES, cap + 1 - total))
                if not len(block):
                    break
                blocks.append(block)
                total += len(block)
    except MediaError:
        raise
    except (soundfile.LibsndfileError, RuntimeError, TypeError, ValueError) as exc:  # ValueError: "array is too big"
        raise MediaError("undecodable_media", f"cannot decode the {header.format} audio: {exc}") from exc
    check_audio_length(total / rate, limits)
    samples = np.concatenate(blocks) if blocks else np.zeros((0, channels), dtype=np.float32)
    return Audio(resample(samples.mean(axis=1), rate), rate, channels)


def check_image_size(width: int, height: int, limits: MediaLimits) -> None:
    if width <= 0 or height <= 0:
        raise MediaError("undecodable_media", f"the image declares {width}x{height} pixels")
    if width * height > limits.max_image_pixels:
        raise MediaError(
            "image_too_large",
            f"{width}x{height} = {width * height:,} pixels is over {limits.max_image_pixels:,} "
            "(refused from the header: a decompression bomb, or an image to downscale first)",
        )


def decode_image(data: bytes, limits: MediaLimits = MediaLimits()) -> Any:
    """The image as an RGB Pillow image, after the header says its size is within the limits."""
    from PIL import Image

    if len(data) > limits.max_image_bytes:
        raise MediaError("media_too_large", f"{len(data)} bytes is over {limits.max_image_bytes}")
    header = image_header(data)
    check_image_size(header.width, header.height, limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            check_image_size(image.width, image.height, limits)  # the decoder's reading of the header too
            image.load()
        return image.convert("RGB")
    except MediaError:
        raise
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, DecompressionBombError...
        raise MediaError("undecodable_media", f"cannot decode the {header.format} image: {exc}") from exc
