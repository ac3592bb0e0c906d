"""What a step optimises: next-token loss on packed sequences (SFT, continued pretraining) or the DPO loss
on preference pairs. Both return a *sum* and a count so that gradient accumulation and data-parallel
ranks can normalise by the global count: every target token (or pair) weighs the same however it is
batched, which is what makes a 2-process run match a 1-process run."""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from trainforge.planning.architecture import PLAIN_HEAD_MODEL_TYPES
from trainforge.training.attention import attention_inputs
from trainforge.training.linear_cross_entropy import chunk_rows, linear_cross_entropy
from trainforge.training.packing import PackedSequence, collate
from trainforge.training.tokenize import IGNORE


class Objective(Protocol):
    def __len__(self) -> int: ...

    def batch(self, indices: list[int]) -> dict[str, torch.Tensor]: ...

    def count(self, batch: dict[str, torch.Tensor]) -> int:
        """How many loss terms the batch holds (target tokens, or pairs)."""

    def tokens(self, batch: dict[str, torch.Tensor]) -> int:
        """How many real (non-padding) tokens the batch holds, for throughput. Not derived from the pad id:
        many tokenizers pad with their end-of-turn token, which real examples also contain."""

    def loss_sum(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...


def _plain_head(model: torch.nn.Module) -> torch.nn.Linear | None:
    """The output projection to apply to selected positions, or None where the full logits must be used
    (``PLAIN_HEAD_MODEL_TYPES``: the output projection and the softmax over a 49k-150k vocabulary are a fifth
    of a small model's step, and most positions of a chat example are prompt, which carries no loss).
    The model is still called through its wrapper: DDP's forward is what syncs the gradients, including the
    head's (autograd sums its two uses before DDP's hook sees the gradient). Under FSDP the head is in the
    root unit, whose weights stay gathered from the forward until the backward reduces their gradients
    (a test trains the tied head sharded and unsharded)."""
    inner: Any = getattr(model, "module", model)
    config = getattr(inner, "config", None)
    if getattr(config, "model_type", None) not in PLAIN_HEAD_MODEL_TYPES:
        return None
    head = inner.get_output_embeddings()
    return head if isinstance(head, torch.nn.Linear) else None


@dataclass
class LanguageModeling:
    sequences: list[PackedSequence]
    seq_len: int
    pad_id: int

    def __len__(self) -> int:
        return len(self.sequences)

    def batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        chosen = [self.sequences[i] for i in indices]
        return {
            **collate(chosen, self.seq_len, self.pad_id),
            "real_tokens": torch.tensor(sum(len(s.input_ids) for s in chosen)),
        }

    def count(self, batch: dict[str, torch.Tensor]) -> int:
        return int((batch["labels"][:, 1:] != IGNORE).sum())

    def tokens(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["real_tokens"])

    def loss_sum(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Summed next-token cross-entropy over the labelled positions (labels are shifted here, not by HF)."""
        selected, targets, head = self._labelled(model, batch)
        return _cross_entropy_sum(selected, targets, head)

    def exact_match_sums(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> tuple[float, int, int]:
        """One forward's loss sum, the examples (documents) whose every labelled token is the model's argmax
        given the reference before it (what greedy decoding would reproduce: ``training.selection``), and the
        examples with a labelled token."""
        selected, targets, head = self._labelled(model, batch)
        loss = float(_cross_entropy_sum(selected, targets, head))
        hits = _argmax(selected, head) == targets
        # the document of each labelled target: rows are packed, each document starting at position 0
        document = (batch["position_ids"] == 0).cumsum(-1)[:, 1:]
        row = torch.arange(document.size(0), device=document.device)[:, None].expand_as(document)
        keys = (row * (document.size(1) + 1) + document)[batch["labels"][:, 1:] != IGNORE]
        documents, inverse = torch.unique(keys, return_inverse=True)
        misses = torch.zeros(len(documents), dtype=torch.long, device=keys.device).index_add_(
            0, inverse, (~hits).long()
        )
        return loss, int((misses == 0).sum()), len(documents)

    def _labelled(
        self, model: torch.nn.Module, batch: dict[str, torch.Tensor]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.nn.Linear | None]:
        """The labelled positions' logits, or their last hidden states where ``head`` projects them (see
        ``_plain_head``), and their targets."""
        inputs = {key: batch[key] for key in ("input_ids", "position_ids", "attention_mask")}
        inputs.update(attention_inputs(model, batch))
        targets = batch["labels"][:, 1:]
        labelled = targets != IGNORE
        head = _plain_head(model)
        if head is None:
            return model(**inputs).logits[:, :-1][labelled], targets[labelled], None
        # logits_to_keep=1: the model projects one position; the labelled ones are projected by the caller.
        outputs = model(**inputs, output_hidden_states=True, logits_to_keep=1)
        return outputs.hidden_states[-1][:, :-1][labelled], targets[labelled], head


def _cross_entropy_sum(selected: torch.Tensor, targets: torch.Tensor, head: torch.nn.Linear | None) -> torch.Tensor:
    if head is None:
        return F.cross_entropy(selected.float(), targets, reduction="sum")
    return linear_cross_entropy(selected, head.weight, head.bias, targets)


def _argmax(selected: torch.Tensor, head: torch.nn.Linear | None) -> torch.Tensor:
    if head is None:
        return selected.argmax(-1)
    return torch.cat(
        [
            F.linear(chunk, head.weight, head.bias).argmax(-1)
            for chunk in selected.split(chunk_rows(selected.device.type, head.weight.size(0)))
        ]
        or [torch.zeros(0, dtype=torch.long, device=selected.device)]
    )


@dataclass(frozen=True)
class PreferencePair:
    prompt: list[int]
    chosen: list[int]
    rejected: list[int]


@dataclass
class DirectPreference:
    """DPO (Rafailov et al., 2023). The reference policy is the base model: for LoRA the same module with
    its adapter disabled (no second copy in memory), for a full fine-tune a frozen copy."""

    pairs: list[PreferencePair]
    seq_len: int
    pad_id: int
    beta: float
    reference: torch.nn.Module | None = None

    def __len__(self) -> int:
        return len(self.pairs)

    def batch(self, indices: list[int]) -> dict[str, torch.Tensor]:
        rows: list[tuple[list[int], list[int]]] = []
        for index in indices:
            pair = self.pairs[index]
            for response in (pair.chosen, pair.rejected):
                ids = (pair.prompt + response)[: self.seq_len]
                flags = ([0] * len(pair.prompt) + [1] * len(response))[: self.seq_len]
                rows.append((ids, flags))
        width = max(len(ids) for ids, _ in rows)
        input_ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        response_mask = torch.zeros((len(rows), width), dtype=torch.long)
        attention = torch.zeros((len(rows), width), dtype=torch.long)
        for row, (ids, response_flags) in enumerate(rows):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            response_mask[row, : len(ids)] = torch.tensor(response_flags)
            attention[row, : len(ids)] = 1
        return {"input_ids": input_ids, "response_mask": response_mask, "attention_mask": attention}

    def count(self, batch: dict[str, torch.Tensor]) -> int:
        return batch["input_ids"].size(0) // 2

    def tokens(self, batch: dict[str, torch.Tensor]) -> int:
        return int(batch["attention_mask"].sum())

    def _logps(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].float()
        targets = batch["input_ids"][:, 1:]
        token_logps = torch.gather(logits.log_softmax(-1), 2, targets.unsqueeze(-1)).squeeze(-1)
        return (token_logps * batch["response_mask"][:, 1:]).sum(-1)

    def loss_sum(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        policy = self._logps(model, batch)
        with torch.no_grad():
            if self.reference is not None:
                reference = self._logps(self.reference, batch)
            else:
                inner: Any = getattr(model, "module", model)
                with inner.disable_adapter() if hasattr(inner, "disable_adapter") else nullcontext():
                    reference = self._logps(model, batch)
        margin = (policy[0::2] - reference[0::2]) - (policy[1::2] - reference[1::2])
        return -F.logsigmoid(self.beta * margin).sum()
