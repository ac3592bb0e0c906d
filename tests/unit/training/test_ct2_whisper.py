"""The CTranslate2 -> HF Whisper converter on a tiny Whisper that the test writes in CTranslate2's layout
(``ModelSpec._serialize``, names as ``WhisperLoader`` gives them): the converted folder loads through
transformers and computes the original model's logits; a broken file is refused with its name and place."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoProcessor, WhisperConfig, WhisperForConditionalGeneration

from trainforge.cli import main
from trainforge.errors import UsageError
from trainforge.training.ct2_whisper import convert, read_ct2
from trainforge.training.tiny import tiny_tokenizer
from trainforge.training.tiny_media import WHISPER_SPECIALS

_TYPE_IDS = {"float32": 0, "int8": 1, "int16": 2, "float16": 4}


def write_ct2(path: Path, variables: dict[str, np.ndarray], aliases: dict[str, str], name: str = "WhisperSpec"):
    """CTranslate2's binary version 6, as ``ModelSpec._serialize`` writes it."""

    def string(text: str) -> bytes:
        return struct.pack("<H", len(text) + 1) + text.encode() + b"\0"

    blob = struct.pack("<I", 6) + string(name) + struct.pack("<I", 3) + struct.pack("<I", len(variables))
    for key, value in variables.items():
        blob += string(key) + struct.pack("<B", value.ndim) + b"".join(struct.pack("<I", d) for d in value.shape)
        blob += struct.pack("<B", _TYPE_IDS[value.dtype.name]) + struct.pack("<I", value.nbytes) + value.tobytes()
    blob += struct.pack("<I", len(aliases)) + b"".join(string(a) + string(t) for a, t in aliases.items())
    path.write_bytes(blob)


def ct2_variables(model: WhisperForConditionalGeneration) -> dict[str, np.ndarray]:
    """The model's weights under CTranslate2's names: q|k|v fused (k's bias zeros), float16, and one int8
    weight with its per-row scale, as ``optimize(quantization="int8")`` stores it."""
    s = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    out: dict[str, np.ndarray] = {}

    def linear(ct2: str, hf: str) -> None:
        out[f"{ct2}/weight"], out[f"{ct2}/bias"] = s[f"{hf}.weight"], s[f"{hf}.bias"]

    def norm(ct2: str, hf: str) -> None:
        out[f"{ct2}/gamma"], out[f"{ct2}/beta"] = s[f"{hf}.weight"], s[f"{hf}.bias"]

    def fused(ct2: str, hf: str, parts: list[str]) -> None:
        out[f"{ct2}/weight"] = np.concatenate([s[f"{hf}.{p}_proj.weight"] for p in parts])
        zeros = np.zeros(s[f"{hf}.q_proj.bias"].shape, np.float32)
        out[f"{ct2}/bias"] = np.concatenate([s.get(f"{hf}.{p}_proj.bias", zeros) for p in parts])

    for side in ("encoder", "decoder"):
        out[f"{side}/position_encodings/encodings"] = s[f"model.{side}.embed_positions.weight"]
        norm(f"{side}/layer_norm", f"model.{side}.layer_norm")
        out[f"{side}/num_heads"] = np.array(2, np.int16)
        for layer in range(model.config.encoder_layers):
            ct2, hf = f"{side}/layer_{layer}", f"model.{side}.layers.{layer}"
            fused(f"{ct2}/self_attention/linear_0", f"{hf}.self_attn", ["q", "k", "v"])
            linear(f"{ct2}/self_attention/linear_1", f"{hf}.self_attn.out_proj")
            norm(f"{ct2}/self_attention/layer_norm", f"{hf}.self_attn_layer_norm")
            if side == "decoder":
                linear(f"{ct2}/attention/linear_0", f"{hf}.encoder_attn.q_proj")
                fused(f"{ct2}/attention/linear_1", f"{hf}.encoder_attn", ["k", "v"])
                linear(f"{ct2}/attention/linear_2", f"{hf}.encoder_attn.out_proj")
                norm(f"{ct2}/attention/layer_norm", f"{hf}.encoder_attn_layer_norm")
            linear(f"{ct2}/ffn/linear_0", f"{hf}.fc1")
            linear(f"{ct2}/ffn/linear_1", f"{hf}.fc2")
            norm(f"{ct2}/ffn/layer_norm", f"{hf}.final_layer_norm")
    for conv in ("conv1", "conv2"):
        linear(f"encoder/{conv}", f"model.encoder.{conv}")
    out["decoder/embeddings/weight"] = s["model.decoder.embed_tokens.weight"]
    out["decoder/pre_norm"] = np.array(1, np.int8)
    stored = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in out.items()}
    fc1 = out["decoder/layer_0/ffn/linear_0/weight"]
    scale = (127.0 / np.abs(fc1).max(axis=1)).astype(np.float32)
    stored["decoder/layer_0/ffn/linear_0/weight"] = np.rint(fc1 * scale[:, None]).astype(np.int8)
    stored["decoder/layer_0/ffn/linear_0/weight_scale"] = scale
    return stored


@pytest.fixture(scope="module")
def ct2_folder(tmp_path_factory) -> tuple[Path, WhisperForConditionalGeneration]:
    folder = tmp_path_factory.mktemp("ct2")
    tokenizer = tiny_tokenizer()
    tokenizer.add_special_tokens({"additional_special_tokens": WHISPER_SPECIALS})
    tokenizer.save_pretrained(folder / "tok")
    (folder / "tokenizer.json").write_bytes((folder / "tok" / "tokenizer.json").read_bytes())
    (folder / "config.json").write_text(json.dumps({"suppress_ids": [5], "suppress_ids_begin": [0]}))
    config = WhisperConfig(
        vocab_size=len(tokenizer), num_mel_bins=80, d_model=16, encoder_layers=1, decoder_layers=1,
        encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        max_source_positions=1500, max_target_positions=32, pad_token_id=0, bos_token_id=0, eos_token_id=0,
        decoder_start_token_id=0,
    )  # fmt: skip
    torch.manual_seed(0)
    model = WhisperForConditionalGeneration(config).eval()
    write_ct2(folder / "model.bin", ct2_variables(model), {"decoder/projection/weight": "decoder/embeddings/weight"})
    return folder, model


def test_converted_folder_computes_the_original_logits(ct2_folder, tmp_path):
    source, original = ct2_folder
    target = convert(source, tmp_path / "hf")
    processor = AutoProcessor.from_pretrained(target)
    converted = WhisperForConditionalGeneration.from_pretrained(target).eval()
    assert processor.tokenizer.convert_ids_to_tokens(converted.config.decoder_start_token_id) == "<|startoftranscript|>"
    assert converted.generation_config.suppress_tokens == [5] and converted.config.tie_word_embeddings
    assert converted.generation_config.is_multilingual is False  # fewer than 51865 tokens: a *.en vocabulary
    features = processor.feature_extractor(np.sin(np.arange(16_000) / 9.0), sampling_rate=16_000, return_tensors="pt")
    prompt = torch.tensor([[converted.config.decoder_start_token_id, 3, 4]])
    with torch.no_grad():
        expected = original(input_features=features["input_features"], decoder_input_ids=prompt).logits
        got = converted(input_features=features["input_features"], decoder_input_ids=prompt).logits
    # float16 storage and one int8 layer: close, not equal; a swapped q/k/v or a wrong slice is far off
    assert torch.allclose(got, expected, atol=2e-2), (got - expected).abs().max()


def test_split_parts_read_as_one_file(ct2_folder, tmp_path):
    source, _ = ct2_folder
    data = (source / "model.bin").read_bytes()
    (tmp_path / "a").write_bytes(data[:1000])
    (tmp_path / "b").write_bytes(data[1000:])
    whole, split = read_ct2([source / "model.bin"]), read_ct2([tmp_path / "a", tmp_path / "b"])
    assert whole.keys() == split.keys() and all(np.array_equal(whole[k], split[k]) for k in whole)
    assert whole["decoder/layer_0/ffn/linear_0/weight"].dtype == np.float32  # int8 dequantised
    with pytest.raises(UsageError, match=r"a: the file ends at byte 1000 inside"):
        read_ct2([tmp_path / "a"])


def test_a_file_of_another_model_is_refused_by_name(tmp_path):
    write_ct2(tmp_path / "model.bin", {"x": np.zeros(2, np.float32)}, {}, name="TransformerSpec")
    with pytest.raises(UsageError, match=r"model.bin: the model is a 'TransformerSpec', not a WhisperSpec"):
        read_ct2([tmp_path / "model.bin"])
    write_ct2(tmp_path / "model.bin", {"x": np.zeros(2, np.float32)}, {"y": "z"})
    with pytest.raises(UsageError, match=r"alias 'y' names 'z'"):
        read_ct2([tmp_path / "model.bin"])


def test_cli_converts_and_names_the_base_model_uri(ct2_folder, tmp_path, capsys):
    source, _ = ct2_folder
    assert main(["convert-whisper", str(source), str(tmp_path / "hf")]) == 0
    assert (tmp_path / "hf" / "preprocessor_config.json").is_file()
    assert (tmp_path / "hf").as_uri() in capsys.readouterr().out.replace("\n", "")
    assert main(["convert-whisper", str(tmp_path / "missing"), str(tmp_path / "x")]) == 2
