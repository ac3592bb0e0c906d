"""Speech and image+text training: peak memory and step time of real-size configs with random weights,
beside the plan's estimate (``trainforge.planning.media``).

    python benchmarks/media_memory.py --measure > measured.jsonl     # on the machine that trains (torch only)
    python benchmarks/media_memory.py --compare measured.jsonl        # here: the estimate beside each line

Each case builds the model from its config (the sizes of whisper-small's and SmolVLM-256M-Instruct's
config.json), on the GPU in fp32, a LoRA adapter of rank 16 (dropout 0.05) on the catalog's targets or full
fine-tuning, and runs what ``training/loop.py`` runs for ``media_objectives``: under bf16 autocast the
model's forward, the cross-entropy of the labelled positions in fp32, the backward, AdamW's step. Speech: 30 s
of log-mel features and a decoder row of ``--tokens``; image+text: one image of 17 tiles of 512 x 512 (its
1,088 image tokens) and ``--tokens`` of text. The peak is torch's ``max_memory_allocated`` over three steps
(the CUDA context comes on top: the estimate's ``runtime``); the step time the median of steps 2 and 3.
``--measure`` needs torch, transformers and peft alone, so it runs where the package's other needs are not
installed.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from trainforge.catalog import CATALOG

WHISPER_SMALL: dict[str, Any] = {
    "model_type": "whisper",
    "d_model": 768,
    "encoder_layers": 12,
    "decoder_layers": 12,
    "encoder_attention_heads": 12,
    "decoder_attention_heads": 12,
    "encoder_ffn_dim": 3072,
    "decoder_ffn_dim": 3072,
    "num_mel_bins": 80,
    "max_source_positions": 1500,
    "max_target_positions": 448,
    "vocab_size": 51865,
}
SMOLVLM_256M: dict[str, Any] = {
    "model_type": "idefics3",
    "scale_factor": 4,
    "image_token_id": 49190,
    "tie_word_embeddings": False,
    "vision_config": {
        "hidden_size": 768,
        "intermediate_size": 3072,
        "num_hidden_layers": 12,
        "num_attention_heads": 12,
        "image_size": 512,
        "patch_size": 16,
    },
    "text_config": {
        "model_type": "llama",
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "head_dim": 64,
        "vocab_size": 49280,
    },
}
#: the image processor SmolVLM ships: longest edge 2,048 in tiles of 512 (4 x 4 and the global one)
SMOLVLM_PROCESSOR = {
    "do_image_splitting": True,
    "size": {"longest_edge": 2048},
    "max_image_size": {"longest_edge": 512},
}
CASES = {"whisper-small": (WHISPER_SMALL, "whisper-small"), "smolvlm-256m": (SMOLVLM_256M, "smolvlm-256m-instruct")}


def _model(name: str, method: str) -> Any:
    import torch
    from transformers import (
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        WhisperConfig,
        WhisperForConditionalGeneration,
    )

    config, catalog_id = CASES[name]
    if name == "whisper-small":
        model = WhisperForConditionalGeneration(WhisperConfig(**{k: v for k, v in config.items() if k != "model_type"}))
    else:
        fields = {k: v for k, v in config.items() if k != "model_type"}
        model = Idefics3ForConditionalGeneration(Idefics3Config(**fields))
    model = model.to("cuda", torch.float32)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        listed = CATALOG[catalog_id].lora_targets  # a lone pattern goes to peft as a string, names as a list
        targets = listed[0] if len(listed) == 1 else list(listed)
        model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules=targets))
    return model


def _batch(name: str, rows: int, tokens: int) -> dict[str, Any]:
    import torch

    if name == "whisper-small":
        ids = torch.randint(0, 50000, (rows, tokens), device="cuda")
        return {"input_features": torch.randn(rows, 80, 3000, device="cuda"), "decoder_input_ids": ids}
    tile = SMOLVLM_256M["vision_config"]["image_size"]
    image = [SMOLVLM_256M["image_token_id"]] * 17 * 64
    half = tokens // 2
    ids = torch.tensor([[1] * half + image + [2] * (tokens - half)] * rows, device="cuda")
    return {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "pixel_values": torch.randn(rows, 17, 3, tile, tile, device="cuda"),
        "pixel_attention_mask": torch.ones(rows, 17, tile, tile, dtype=torch.bool, device="cuda"),
    }


def measure(name: str, method: str, rows: int, tokens: int) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    torch.manual_seed(0)
    model = _model(name, method)
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    batch = _batch(name, rows, tokens)
    key = "decoder_input_ids" if name == "whisper-small" else "input_ids"
    labels = batch[key].clone()
    labels[:, : labels.shape[1] - tokens // 2] = -100  # the answer / transcript half carries the loss
    torch.cuda.reset_peak_memory_stats()
    seconds = []
    for _ in range(3):
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.bfloat16):
            logits = model(**batch).logits
        labelled = labels != -100
        loss = F.cross_entropy(logits[labelled].float(), labels[labelled], reduction="sum") / labelled.sum()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    free, total = torch.cuda.mem_get_info()
    return {
        "case": name,
        "method": method,
        "rows": rows,
        "tokens": tokens,
        "peak_allocated": int(torch.cuda.max_memory_allocated()),
        "device_used": int(total - free),
        "step_seconds": sorted(seconds[1:])[0],
        "device": torch.cuda.get_device_name(),
    }


def compare(path: Path) -> None:
    from trainforge.planning.media import MediaRows, MediaShape, MediaWorkload
    from trainforge.planning.memory import RUNTIME_BYTES, estimate_peak, gib
    from trainforge.planning.throughput import training_rate
    from trainforge.spec import Hyperparameters

    for line in path.read_text().splitlines():
        seen = json.loads(line)
        config = CASES[seen["case"]][0]
        shape = MediaShape.from_config(config, SMOLVLM_PROCESSOR)
        assert shape is not None
        images = 1.0 if shape.kind == "vision-text" else 0.0
        workload = MediaWorkload(shape, MediaRows(seen["tokens"], seen["tokens"], images))
        hyper = Hyperparameters(batch_size=seen["rows"], lora_dropout=0.05)
        estimate = estimate_peak(workload, hyper, seen["method"], device="cuda", bf16=True)
        flops = workload.example_flops(hyper, seen["method"])[0] * seen["rows"]
        rate = training_rate("NVIDIA H200", True)
        allocated = estimate.total - RUNTIME_BYTES["cuda"]
        print(
            f"{seen['case']} {seen['method']} {seen['rows']} x {seen['tokens']}: estimate {gib(allocated)} GiB "
            f"allocated ({estimate.describe()}), measured {gib(seen['peak_allocated'])} GiB "
            f"({allocated / seen['peak_allocated'] - 1:+.0%}); step {seen['step_seconds']:.3f} s = "
            f"{flops / seen['step_seconds'] / 1e12:.0f} TFLOP/s of {flops / 1e12:.2f} TFLOP"
            + (f" (the plan's H200 row: {rate.low / 1e12:.0f}-{rate.high / 1e12:.0f})" if rate else "")
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--measure", action="store_true")
    parser.add_argument("--compare", type=Path)
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--methods", nargs="+", default=["lora", "full"])
    parser.add_argument("--rows", nargs="+", type=int, default=[8])
    parser.add_argument("--tokens", type=int, default=64)
    args = parser.parse_args()
    if args.compare:
        compare(args.compare)
        return
    for case in args.cases:
        for method in args.methods:
            for rows in args.rows:
                print(json.dumps(measure(case, method, rows, args.tokens)), flush=True)


if __name__ == "__main__":
    main()
