"""The work and the memory of training a speech (Whisper) or image+text (Idefics3, as in SmolVLM) model, from
its ``config.json`` alone (no torch): what the text estimate (``planning.memory``, ``planning.duration``)
cannot know, since it sees one decoder stack over packed rows of ``max_seq_len``.

Neither tier packs (``training/media_objectives.py``): each example is its own row, and much of its work is
in an encoder whose input does not depend on the text.

- **Whisper** (``WhisperConfig``: ``d_model``, ``encoder_layers``, ``decoder_layers``,
  ``encoder_attention_heads``, ``encoder_ffn_dim``, ``decoder_ffn_dim``, ``num_mel_bins``,
  ``max_source_positions``, ``max_target_positions``, ``vocab_size``;
  https://huggingface.co/docs/transformers/model_doc/whisper#transformers.WhisperConfig). The feature
  extractor pads every clip to 30 s of mel frames (``WhisperFeatureExtractor``: ``chunk_length`` 30,
  ``padding="max_length"``), and two convolutions, the second of stride 2, halve them: the encoder runs over
  ``max_source_positions`` (1,500) positions for a 2-second clip as for a 30-second one. The decoder runs over
  the task prompt and the transcript (at most ``max_target_positions``, 448), with cross-attention to all
  1,500 encoder positions in each of its layers. The output head is tied to the token embeddings.
- **Idefics3 / SmolVLM** (``Idefics3Config``: ``vision_config`` with ``hidden_size``, ``intermediate_size``,
  ``num_hidden_layers``, ``image_size``, ``patch_size``; ``scale_factor``; ``text_config``, a Llama;
  https://huggingface.co/docs/transformers/model_doc/idefics3). The image processor resizes an image's
  longest edge to ``size.longest_edge`` and cuts it into tiles of ``max_image_size.longest_edge``, plus one
  global tile when it split (``do_image_splitting``;
  https://huggingface.co/docs/transformers/model_doc/idefics3#transformers.Idefics3ImageProcessor): a
  square image is the most tiles, ``(longest_edge / max_image_size)^2 + 1`` (17 for SmolVLM's 2,048 / 512),
  which the plan counts. Each tile's ``(image_size / patch_size)^2`` patches run through the SigLIP vision
  tower; the pixel shuffle folds ``scale_factor^2`` of them into one token and a linear connector projects
  it to the language model, which reads ``(image_size / patch_size / scale_factor)^2`` image tokens per tile
  with the text. A LoRA adapter on the language model alone (the catalog's targets) leaves the vision tower
  without a backward: it runs forward only and keeps nothing for the backward.

Memory counts what ``media_objectives`` holds at its peak, as ``planning.memory`` does for text: fp32
weights (and under bf16 autocast the bf16 copies of the linear weights the backward needs), gradients and
AdamW's moments of what trains, each stack's activations per position, the full logits (these objectives
compute the head over every position, then the cross-entropy of the labelled ones in fp32) and the step's
inputs (log-mel features, pixel tiles). Measured against it in docs/planning.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from trainforge.contracts import DatasetReport
from trainforge.planning.architecture import ModelShape, UnknownArchitecture
from trainforge.planning.memory import FP32_ATTENTION_DEVICES, RUNTIME_BYTES, DeviceKind, MemoryEstimate
from trainforge.planning.work import BYTES_PER_TOKEN
from trainforge.spec import Hyperparameters, Method

#: when the base model's folder has no processor config: SmolVLM's image processor (longest edge 4 x 512,
#: tiles of 512: 4 x 4 tiles and the global one), the catalog's multimodal default
_SMOLVLM_TILES = 17
#: a tile's pixels are three fp32 channels, and the processor's pixel mask one byte
_PIXEL_BYTES = 3 * 4 + 1


@dataclass(frozen=True)
class Stack:
    """``layers`` pre-norm transformer layers: self-attention (and cross-attention over an encoder's output),
    then an MLP of two matrices with GELU (Whisper, SigLIP) or three with a gate (Llama)."""

    layers: int
    width: int
    ffn: int
    attention_width: int
    kv_width: int
    gated: bool = False
    cross: bool = False

    @classmethod
    def plain(cls, layers: int, width: int, ffn: int, *, cross: bool = False) -> Stack:
        return cls(layers, width, ffn, width, width, cross=cross)

    @classmethod
    def of(cls, text: ModelShape) -> Stack:
        return cls(
            text.layers, text.hidden_size, text.intermediate_size, text.attention_width, text.kv_width, gated=True
        )

    def linear_layers(self) -> list[tuple[int, int, int]]:
        """(in, out, copies) of one layer's linear layers (every one a LoRA target of the catalog's)."""
        w = self.width
        found = [(w, self.attention_width, 1), (w, self.kv_width, 2), (self.attention_width, w, 1)]
        if self.cross:  # q and out over the decoder's positions; k and v over the encoder's: see flops
            found += [(w, w, 4)]
        return [*found, (w, self.ffn, 2 if self.gated else 1), (self.ffn, w, 1)]

    @property
    def linear_weights(self) -> int:
        return self.layers * sum(i * o * copies for i, o, copies in self.linear_layers())

    def lora_parameters(self, rank: int) -> int:
        return self.layers * sum(rank * (i + o) * copies for i, o, copies in self.linear_layers())

    def activation_bytes(self, compute: int, adapter_rank: int | None, dropout: bool, kernel: int) -> int:
        """What one layer keeps for the backward per position of its own: the norms' fp32 inputs; the input
        of every linear layer that needs it (under autocast each keeps its own bf16 cast; in fp32 the norms'
        outputs, attention's output and the MLP's inner tensor serve every layer that reads them; under
        LoRA the frozen layer keeps nothing and its adapter keeps its own cast of its dropped-out input, with
        a byte-per-element mask); attention's q, k, v and output (the kernel's); the MLP's activation input
        (and the up projection's output under a gate); the adapters' rank-r products. Cross-attention's k
        and v, over the encoder's positions, are counted with those."""
        w, fp32 = self.width, 4
        norms = 3 if self.cross else 2
        linears = self.linear_layers()
        cross_kv = 2 * w if self.cross else 0  # their inputs are the encoder's output, not this stack's
        inputs = sum(i * copies for i, _, copies in linears) - cross_kv
        masks = adapter_rank is not None and dropout
        if compute == 2 or masks:
            held = inputs * (compute + (1 if masks else 0))
        else:
            held = fp32 * (norms * w + self.attention_width + (w if self.cross else 0) + self.ffn)
        attention = kernel * (2 * self.attention_width + 2 * self.kv_width) + (2 * kernel * w if self.cross else 0)
        mlp = compute * self.ffn * (2 if self.gated else 1)
        total = fp32 * norms * w + held + attention + mlp
        if adapter_rank is not None:
            total += compute * adapter_rank * sum(copies for _, _, copies in linears)
        return total


@dataclass(frozen=True)
class MediaRows:
    """The examples of the data, as these models see them: text tokens (the decoder's, or the language
    model's besides the image tokens) on average and at most, and images per example."""

    mean_tokens: float
    longest_tokens: int
    images: float = 0.0


@dataclass(frozen=True)
class Part:
    """A stack and what it runs over per example: its own positions, and the encoder positions its
    cross-attention reads."""

    name: str
    stack: Stack
    positions: float
    #: positions each position attends to, on average
    attended: float
    encoder_positions: int = 0
    #: a LoRA adapter of the catalog's targets sits in this stack (else a LoRA run leaves it frozen)
    adapted: bool = True
    #: the backward reaches it (an adapter in it or after it takes gradients through it)
    backward: bool = True


@dataclass(frozen=True)
class MediaShape:
    """A speech or image+text model's size, from config.json: its stacks and what sits around them."""

    kind: str  # "speech" or "vision-text"
    #: every parameter torch counts (a tied head once)
    parameters: int
    vocab_size: int
    #: the width the head projects from, and the stacks
    head_width: int
    encoder: Stack
    decoder: Stack
    #: encoder positions per example (Whisper) or per image tile (the vision tower)
    encoder_positions: int
    #: image tokens per tile, and tiles per image (image+text); mel bins (speech)
    tokens_per_tile: int = 0
    tiles_per_image: int = 0
    mel_bins: int = 0
    #: the vision tower's image side, for the pixel tiles a batch holds
    image_size: int = 0
    #: the text model's shape (image+text), for the deployment checks that read one
    text: ModelShape | None = None
    #: the decoder's positions (Whisper's ``max_target_positions``), which no transcript outgrows
    decoder_positions: int | None = None

    @classmethod
    def from_config(cls, config: Mapping[str, Any], processor: Mapping[str, Any] | None = None) -> MediaShape | None:
        """A Whisper or Idefics3 config's shape (SmolVLM's ``smolvlm`` config is Idefics3's architecture under
        another name: transformers builds it from Idefics3's modules); None for any other model (the text
        estimate's). ``processor``:
        the folder's processor config (``processor_config.json``'s ``image_processor``, or
        ``preprocessor_config.json``), for the tiles an image is cut into."""
        model_type = config.get("model_type")
        if model_type == "whisper":
            return _whisper(config)
        if model_type in ("idefics3", "smolvlm"):
            return _idefics3(config, processor or {})
        return None

    @property
    def image_tokens(self) -> int:
        """Tokens one image becomes in the language model's input (its most tiles)."""
        return self.tokens_per_tile * self.tiles_per_image

    def lora_parameters(self, rank: int) -> int:
        """The catalog's targets: every linear layer of Whisper's encoder and decoder, the language model's
        alone in Idefics3."""
        adapted = self.decoder.lora_parameters(rank)
        return adapted + (self.encoder.lora_parameters(rank) if self.kind == "speech" else 0)

    def parts(self, text_tokens: float, images: float, adapter: bool) -> list[Part]:
        """The stacks and their positions for an example of ``text_tokens`` and ``images``."""
        if self.kind == "speech":
            encoder = Part("encoder", self.encoder, self.encoder_positions, self.encoder_positions)
            decoder = Part(
                "decoder", self.decoder, text_tokens, text_tokens / 2, encoder_positions=self.encoder_positions
            )
            return [encoder, decoder]
        tiles = images * self.tiles_per_image
        # the vision tower attends within each tile; a LoRA run on the language model leaves it frozen
        vision = Part(
            "vision",
            self.encoder,
            tiles * self.encoder_positions,
            self.encoder_positions,
            adapted=not adapter,
            backward=not adapter,
        )
        length = self.head_positions(text_tokens, images)
        return [vision, Part("language", self.decoder, length, length / 2)]

    def head_positions(self, text_tokens: float, images: float) -> float:
        """Positions the head projects onto the vocabulary: the decoder's, or every language-model position."""
        return text_tokens + images * self.image_tokens


def forward_flops(part: Part) -> tuple[float, float]:
    """(linear, attention) FLOPs of one example's forward through ``part``, multiply-adds counted as two. A
    cross-attention's k and v run over the encoder's positions once per layer, whatever the text's length."""
    stack = part.stack
    linear = 2 * part.positions * sum(i * o * c for i, o, c in stack.linear_layers()) * stack.layers
    attention = 2 * 2 * stack.layers * stack.attention_width * part.positions * part.attended
    if stack.cross:
        linear -= 2 * part.positions * 2 * stack.width * stack.width * stack.layers  # k, v: not per position
        linear += 2 * part.encoder_positions * 2 * stack.width * stack.width * stack.layers
        attention += 2 * 2 * stack.layers * stack.width * part.positions * part.encoder_positions
    return linear, attention


def example_flops(shape: MediaShape, rows: MediaRows, hyper: Hyperparameters, method: Method) -> tuple[float, float]:
    """(training, forward) FLOPs of one average example: each stack's forward and, where the backward reaches
    it, its backward by the text rule (``planning.duration``: twice the forward for a full fine-tune; for
    LoRA the frozen weights' input gradients, once the linear forward, attention's twice, the adapters' three
    times theirs), one more forward under checkpointing; and the head over its positions."""
    adapter = method in ("lora", "dpo")
    training = forward = 0.0
    for part in shape.parts(rows.mean_tokens, rows.images, adapter):
        linear, attention = forward_flops(part)
        adapters = 0.0
        if adapter and part.adapted:
            adapters = 2 * part.positions * part.stack.lora_parameters(hyper.lora_rank)
        forward += linear + attention + adapters
        if not part.backward:
            training += linear + attention
            continue
        training += 2 * linear + 3 * attention + 3 * adapters if adapter else 3 * (linear + attention)
        if hyper.gradient_checkpointing:
            training += linear + attention + adapters
    head = 2 * shape.head_positions(rows.mean_tokens, rows.images) * shape.head_width * shape.vocab_size
    forward += head
    training += head * (2 if adapter else 3)
    training += _convolutions(shape)
    forward += _convolutions(shape)
    return training, forward


def _convolutions(shape: MediaShape) -> float:
    """Whisper's two input convolutions (kernel 3; the first over the 3,000 mel frames, the second, of stride
    2, onto the 1,500 positions), forward only: the features need no gradient."""
    if shape.kind != "speech":
        return 0.0
    width, positions = shape.encoder.width, shape.encoder_positions
    return 2 * 3 * width * (shape.mel_bins * 2 * positions + width * positions)


def estimate_media_peak(
    shape: MediaShape,
    rows: MediaRows,
    hyper: Hyperparameters,
    method: Method,
    *,
    device: DeviceKind,
    bf16: bool,
) -> MemoryEstimate:
    """Peak memory of one training process on the longest example, ``hyper.batch_size`` rows of it (rows are
    padded to the batch's longest). ``max_seq_len`` plays no part: these objectives do not pack or cut."""
    compute, fp32 = (2 if bf16 else 4), 4
    kernel = fp32 if device in FP32_ATTENTION_DEVICES else compute
    adapter = method in ("lora", "dpo")
    rows_per_batch = hyper.batch_size
    images = math.ceil(rows.images)  # the most an example has is not in the report: its mean, rounded up
    trainable = shape.lora_parameters(hyper.lora_rank) if adapter else shape.parameters
    weights = shape.parameters * fp32
    activations = backward = 0
    for part in shape.parts(rows.longest_tokens, images, adapter):
        stack, positions = part.stack, rows_per_batch * part.positions
        if bf16 and part.backward:  # the bf16 copies of its linear weights the backward reads
            weights += stack.linear_weights * 2
        if not part.backward:  # forward only: one layer's working set at a time
            activations += int(positions * (2 * fp32 * stack.width + compute * 2 * stack.ffn))
            continue
        rank = hyper.lora_rank if adapter and part.adapted else None
        layer = stack.activation_bytes(compute, rank, adapter and hyper.lora_dropout > 0, kernel)
        kept = stack.layers * (fp32 * stack.width if hyper.gradient_checkpointing else layer)
        activations += int(positions * (kept + (layer if hyper.gradient_checkpointing else 0)))
        if part.encoder_positions:  # cross-attention's k and v of the encoder's output, and their input
            per_layer = 2 * kernel * stack.width + (2 * compute if bf16 else 0) * stack.width
            encoder = rows_per_batch * part.encoder_positions
            activations += encoder * (stack.layers * per_layer + fp32 * stack.width)
        backward = max(backward, int(positions * (fp32 * 2 * stack.width + compute * 4 * stack.ffn)))
    head = rows_per_batch * shape.head_positions(rows.longest_tokens, images)
    if bf16:
        weights += shape.vocab_size * shape.head_width * 2
    # the logits and their gradient, and the labelled positions' fp32 log-probabilities and their gradient
    loss = int(head * shape.vocab_size * 2 * compute + rows_per_batch * rows.longest_tokens * shape.vocab_size * 8)
    if shape.kind == "speech":
        inputs = shape.mel_bins * 2 * shape.encoder_positions * fp32
    else:
        inputs = images * shape.tiles_per_image * shape.image_size**2 * _PIXEL_BYTES
    batches = hyper.grad_accum * rows_per_batch * (inputs + 40 * rows.longest_tokens)
    return MemoryEstimate(
        {
            "runtime": RUNTIME_BYTES[device],
            "weights": weights,
            "gradients": trainable * fp32,
            "optimizer": 2 * trainable * fp32,
            "activations": activations,
            "loss": loss,
            "backward": backward,
            "batches": batches,
        }
    )


def media_rows(shape: MediaShape, report: DatasetReport) -> MediaRows:
    """The report's examples as rows: its token counts (the transcript's, or the text parts'), capped at the
    decoder's positions, and its images per example."""
    stats = report.token_stats
    examples = max(report.valid_records, 1)
    mean = stats.mean_tokens if stats else report.bytes_read / examples / BYTES_PER_TOKEN
    longest = stats.max_tokens if stats else math.ceil(mean)
    if shape.decoder_positions:
        mean, longest = min(mean, shape.decoder_positions), min(longest, shape.decoder_positions)
    return MediaRows(mean, longest, (report.images or 0) / examples)


@dataclass(frozen=True)
class MediaWorkload:
    """A speech or image+text model with the data it trains on: what the plan's memory fit
    (``planning.memory.fit_to_memory``) and time (``planning.duration``) take in place of a text model's
    shape."""

    shape: MediaShape
    rows: MediaRows

    @property
    def parameters(self) -> int:
        return self.shape.parameters

    def peak(self, hyper: Hyperparameters, method: Method, *, device: DeviceKind, bf16: bool) -> MemoryEstimate:
        return estimate_media_peak(self.shape, self.rows, hyper, method, device=device, bf16=bf16)

    def example_flops(self, hyper: Hyperparameters, method: Method) -> tuple[float, float]:
        return example_flops(self.shape, self.rows, hyper, method)

    @property
    def row_tokens(self) -> float:
        """Positions of an average example's row: its text and its image tokens."""
        return self.shape.head_positions(self.rows.mean_tokens, self.rows.images)

    def describe(self) -> str:
        """What the plan's figures rest on, for its notes."""
        shape, rows = self.shape, self.rows
        forward = example_flops(shape, rows, Hyperparameters(), "full")[1]
        if shape.kind == "speech":
            work = (
                f"speech: the encoder ({shape.encoder.layers} layers) runs over {shape.encoder_positions:,} positions "
                f"per example, 30 s of audio whatever the clip's length; the decoder ({shape.decoder.layers} layers) "
                f"over {rows.mean_tokens:.0f} tokens on average, at most {rows.longest_tokens}"
            )
        else:
            work = (
                f"image+text: the vision tower ({shape.encoder.layers} layers) runs over each image's tiles (up to "
                f"{shape.tiles_per_image}) of {shape.encoder_positions:,} patches, "
                f"{shape.tokens_per_tile} image tokens per tile ({shape.image_tokens:,} per image, "
                f"{rows.images:.2g} images per example); the language model over {self.row_tokens:,.0f} positions "
                "on average"
            )
        return f"{work}: {forward / 1e9:,.1f} GFLOP per example forward; no packing, one example per row"


def _ints(config: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, int]:
    missing = [key for key in keys if not isinstance(config.get(key), int)]
    if missing:
        raise UnknownArchitecture(
            f"config.json ({config.get('model_type', 'no model_type')}) has no {', '.join(missing)}"
        )
    return {key: int(config[key]) for key in keys}


def _whisper(config: Mapping[str, Any]) -> MediaShape:
    c = _ints(
        config,
        (
            "d_model",
            "encoder_layers",
            "decoder_layers",
            "encoder_ffn_dim",
            "decoder_ffn_dim",
            "num_mel_bins",
            "max_source_positions",
            "max_target_positions",
            "vocab_size",
        ),
    )
    w, frames = c["d_model"], c["max_source_positions"]
    encoder = Stack.plain(c["encoder_layers"], w, c["encoder_ffn_dim"])
    decoder = Stack.plain(c["decoder_layers"], w, c["decoder_ffn_dim"], cross=True)

    def biases_and_norms(stack: Stack) -> int:
        # q, v and out carry biases (k does not), fc1 and fc2 too; two layer norms (three with cross-attention)
        attention = 3 * w * (2 if stack.cross else 1)
        return stack.layers * (attention + stack.ffn + w + (3 if stack.cross else 2) * 2 * w) + 2 * w

    convolutions = c["num_mel_bins"] * w * 3 + w + w * w * 3 + w
    positions = (frames + c["max_target_positions"]) * w  # both position tables are parameters
    parameters = (
        encoder.linear_weights
        + decoder.linear_weights
        + biases_and_norms(encoder)
        + biases_and_norms(decoder)
        + convolutions
        + positions
        + c["vocab_size"] * w  # the token embeddings, which the head shares
    )
    return MediaShape(
        "speech",
        parameters,
        c["vocab_size"],
        w,
        encoder,
        decoder,
        frames,
        mel_bins=c["num_mel_bins"],
        decoder_positions=c["max_target_positions"],
    )


def _idefics3(config: Mapping[str, Any], processor: Mapping[str, Any]) -> MediaShape:
    vision = config.get("vision_config") or {}
    v = _ints(
        {"model_type": "idefics3 vision_config", **vision},
        ("hidden_size", "intermediate_size", "num_hidden_layers", "image_size", "patch_size"),
    )
    text = ModelShape.from_config(config)
    scale = int(config.get("scale_factor") or 2)
    side = v["image_size"] // v["patch_size"]
    patches, w = side * side, v["hidden_size"]
    tower = Stack.plain(v["num_hidden_layers"], w, v["intermediate_size"])
    # every projection and MLP matrix has a bias; two layer norms a layer and one after the tower; the patch
    # convolution over three channels, a position table, and the connector (no bias) onto the text's width
    tower_parameters = (
        tower.linear_weights
        + tower.layers * (4 * w + v["intermediate_size"] + w + 2 * 2 * w)
        + 2 * w
        + 3 * v["patch_size"] ** 2 * w
        + w
        + patches * w
    )
    connector = w * scale * scale * text.hidden_size
    return MediaShape(
        "vision-text",
        tower_parameters + connector + text.parameters,
        text.vocab_size,
        text.hidden_size,
        tower,
        Stack.of(text),
        patches,
        tokens_per_tile=patches // (scale * scale),
        tiles_per_image=_tiles(processor.get("image_processor") or processor),
        image_size=v["image_size"],
        text=text,
    )


def _tiles(images: Mapping[str, Any]) -> int:
    """The most tiles the image processor cuts an image into (a square one; see the module's docstring)."""
    if not images:
        return _SMOLVLM_TILES
    if not images.get("do_image_splitting", True):
        return 1
    longest = (images.get("size") or {}).get("longest_edge")
    tile = (images.get("max_image_size") or {}).get("longest_edge")
    if not isinstance(longest, int) or not isinstance(tile, int) or tile <= 0:
        return _SMOLVLM_TILES
    per_side = math.ceil(longest / tile)
    return per_side * per_side + (1 if per_side > 1 else 0)
