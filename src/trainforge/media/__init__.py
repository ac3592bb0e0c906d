"""Audio and image data for the speech and multimodal tiers: header checks that need no decoder, full
decoding with Pillow and soundfile, references resolved through the dataset's own store, and the
checks validation runs on every record's media."""

from trainforge.media.checks import MEDIA_FORMATS, MediaChecker
from trainforge.media.headers import AudioHeader, ImageHeader, MediaError, audio_header, image_header
from trainforge.media.limits import TARGET_SAMPLE_RATE, MediaLimits

__all__ = (
    "MEDIA_FORMATS",
    "TARGET_SAMPLE_RATE",
    "AudioHeader",
    "ImageHeader",
    "MediaChecker",
    "MediaError",
    "MediaLimits",
    "audio_header",
    "image_header",
)
