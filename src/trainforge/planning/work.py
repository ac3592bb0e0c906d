"""What a run will compute, from the dataset report alone: examples, tokens, packed sequences, steps and
epochs, the validation passes during training and the evaluation job's scoring and generation.

The report counts every example's tokens with the base model's own tokenizer (``data/tokens.py``) but
keeps only their sum and a histogram by length, not the lengths. The lengths are rebuilt from the
histogram: within each bucket spread from its lower to its upper edge, with one exponent for all buckets
chosen so that their sum is the report's total (the counts and the total are exact; only the spread inside
a bucket is assumed). Packing is then estimated by best-fit decreasing over those lengths, which pads a
little more than the training packer's minimum-slack search (``training/packing.py``: about 1% against 3%
at 256 tokens), so the number of sequences, and of steps in an epoch-bound run, errs high.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass

from trainforge.contracts import DatasetReport, PlannedWork, TokenStats
from trainforge.spec import JobSpec

#: the report's bucket edges (``data/tokens.py``): a bucket ``<=U`` holds lengths above the edge before U
_EDGES = (0, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768)
#: points each bucket is represented by (a weighted quantile each): enough for packing, constant in the data
_POINTS_PER_BUCKET = 64
#: when the report has no token counts (the base model has no tokenizer.json): bytes per token of English
#: text with a BPE tokenizer of 32k-150k entries, for the order of magnitude only (the plan notes it)
BYTES_PER_TOKEN = 4.0


@dataclass(frozen=True)
class Lengths:
    """Token lengths as a multiset (length -> examples), for one side of the split."""

    counts: dict[int, int]

    @property
    def examples(self) -> int:
        return sum(self.counts.values())

    def kept(self, max_seq_len: int) -> int:
        return sum(min(length, max_seq_len) * n for length, n in self.counts.items())

    def truncated(self, max_seq_len: int) -> int:
        return sum(n for length, n in self.counts.items() if length > max_seq_len)

    def scaled(self, share: float) -> Lengths:
        """The same distribution for ``share`` of the examples (one side of the split), the rounding spread by
        largest remainder so that the examples add up to ``share`` of the whole."""
        exact = {length: n * share for length, n in self.counts.items()}
        counts = {length: int(value) for length, value in exact.items()}
        left = round(self.examples * share) - sum(counts.values())
        for length in sorted(exact, key=lambda k: exact[k] - counts[k], reverse=True)[:left]:
            counts[length] += 1
        return Lengths({length: n for length, n in counts.items() if n})


def _buckets(stats: TokenStats) -> list[tuple[int, int, int]]:
    """(lower edge exclusive, upper edge inclusive, examples) of each histogram bucket."""
    found = []
    for key, count in stats.histogram.items():
        if key.startswith("<="):
            upper = int(key[2:])
            lower = _EDGES[_EDGES.index(upper) - 1]
        else:
            lower, upper = int(key[1:]), stats.max_tokens
        found.append((lower, min(upper, stats.max_tokens), count))
    return found


def lengths_from_stats(stats: TokenStats) -> Lengths:
    """The lengths the histogram and the total imply (see the module's docstring)."""
    points: list[tuple[int, int, float, int]] = []  # (lower, upper, quantile, examples)
    for lower, upper, count in _buckets(stats):
        slots = min(count, _POINTS_PER_BUCKET)
        for index in range(slots):
            examples = count // slots + (1 if index < count % slots else 0)
            points.append((lower, upper, (index + 0.5) / slots, examples))

    def spread(exponent: float) -> list[tuple[int, int]]:
        return [
            (max(1, round(lower + 1 + (upper - lower - 1) * quantile**exponent)), examples)
            for lower, upper, quantile, examples in points
        ]

    # a larger exponent moves every length toward its bucket's lower edge: find the one matching the total
    low, high = math.log(1e-3), math.log(1e3)
    for _ in range(40):
        middle = (low + high) / 2
        total = sum(length * n for length, n in spread(math.exp(middle)))
        low, high = (middle, high) if total > stats.total_tokens else (low, middle)
    counts: dict[int, int] = {}
    for length, examples in spread(math.exp((low + high) / 2)):
        counts[length] = counts.get(length, 0) + examples
    return Lengths(counts)


def pack(lengths: Lengths, max_seq_len: int) -> int:
    """Sequences of ``max_seq_len`` that best-fit decreasing fills with the lengths (each truncated to fit)."""
    rooms: dict[int, int] = {}  # room left -> open sequences with that much room
    ordered: list[int] = []  # the rooms present, ascending

    def add(room: int, count: int) -> None:
        if room and count:
            if room not in rooms:
                bisect.insort(ordered, room)
            rooms[room] = rooms.get(room, 0) + count

    sequences = 0
    for length in sorted(lengths.counts, reverse=True):
        size, left = min(length, max_seq_len), lengths.counts[length]
        while left:
            at = bisect.bisect_left(ordered, size)
            if at == len(ordered):  # no open sequence has room: new ones, each as full of this length as it gets
                each = max_seq_len // size
                full, rest = divmod(left, each)
                sequences += full + (1 if rest else 0)
                add(max_seq_len - each * size, full)
                add(max_seq_len - rest * size, 1 if rest else 0)
                break
            source = ordered[at]
            moved = min(left, rooms[source])
            rooms[source] -= moved
            if not rooms[source]:
                del rooms[source]
                ordered.pop(at)
            add(source - size, moved)
            left -= moved
    return sequences


@dataclass(frozen=True)
class DataShape:
    """The report's data as training sees it: the two sides of the split and where the counts came from."""

    train: Lengths
    held_out: Lengths
    tokenizer: str
    counted: bool  # False: estimated from bytes (no tokenizer)


def data_shape(spec: JobSpec, report: DatasetReport) -> DataShape:
    stats = report.token_stats
    counted = stats is not None
    if stats is None:
        mean = max(1, round(report.bytes_read / max(report.valid_records, 1) / BYTES_PER_TOKEN))
        everything = Lengths({mean: report.valid_records})
        tokenizer = f"none (about {BYTES_PER_TOKEN:g} bytes per token)"
    else:
        everything = lengths_from_stats(stats)
        tokenizer = stats.tokenizer
    if report.split is not None:
        share = report.split.train_examples / max(report.split.train_examples + report.split.validation_examples, 1)
    else:  # a validation file of its own: the report counted both together; its side is not known here
        share = 1.0
    held = everything.scaled(1 - share) if report.split is not None else Lengths({})
    return DataShape(everything.scaled(share), held, tokenizer, counted)


def optimizer_steps(max_steps: int | None, epochs: float, examples: int, per_step: int) -> int:
    """How many optimizer steps a run takes: ``max_steps`` when set, else enough for ``epochs`` passes over
    ``examples`` at ``per_step`` examples a step (the training loop's count, so the plan's is the same)."""
    return max_steps or max(1, math.ceil(epochs * examples / per_step))


def planned_work(spec: JobSpec, shape: DataShape, world_size: int, row_tokens: float | None = None) -> PlannedWork:
    """The work of ``spec`` on the data, trained by ``world_size`` processes. ``row_tokens``: a speech or
    image+text model's positions per example (``planning.media``): each example is a row of its own, neither
    packed nor cut to ``max_seq_len`` (``training/media_objectives.py``)."""
    hyper = spec.hyperparameters
    length = hyper.max_seq_len
    dpo = spec.method == "dpo"
    tokens = shape.train.kept(length)
    # DPO trains on pairs, each two rows (chosen, rejected); media examples are rows; the rest packed sequences
    sequences = shape.train.examples if dpo or row_tokens else pack(shape.train, length)
    rows_per_sequence = 2 if dpo else 1
    per_step = hyper.batch_size * hyper.grad_accum * world_size
    steps = optimizer_steps(hyper.max_steps, hyper.epochs, sequences, per_step)
    epochs = steps * per_step / max(sequences, 1)
    tokens_per_step = per_step * rows_per_sequence * length
    held = shape.held_out
    evaluation_examples = min(spec.evaluation.max_examples, held.examples) if held.examples else 0
    mean_held = held.kept(length) / max(held.examples, 1)
    if row_tokens:
        tokens, tokens_per_step, mean_held = (
            round(shape.train.examples * row_tokens),
            round(per_step * row_tokens),
            row_tokens,
        )
    real_per_sequence = tokens / max(sequences, 1)
    return PlannedWork(
        tokenizer=shape.tokenizer,
        examples=shape.train.examples,
        tokens=tokens,
        truncated_examples=0 if row_tokens else shape.train.truncated(length),
        sequences=sequences,
        padding_fraction=round(0.0 if dpo or row_tokens else 1 - tokens / max(sequences * length, 1), 4),
        tokens_per_step=tokens_per_step,
        steps=steps,
        epochs=round(epochs, 3),
        trained_tokens=round(steps * per_step * real_per_sequence),
        validation_tokens=round(held.examples * mean_held) if row_tokens else held.kept(length),
        evaluation_examples=evaluation_examples,
        evaluation_tokens=round(evaluation_examples * mean_held),
        # exact match and F1 score every evaluated example (evaluation/scoring.py), not only the displayed ones
        generated_tokens=evaluation_examples * spec.evaluation.max_new_tokens,
    )


def validation_passes(spec: JobSpec, steps: int) -> int:
    """How often training scores the held-out side: every ``eval_every`` steps and once at the end."""
    every = spec.hyperparameters.eval_every
    return steps // every + (1 if steps % every else 0)
