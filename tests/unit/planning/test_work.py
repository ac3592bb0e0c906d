"""The work of a run from the dataset report: lengths rebuilt from the histogram, packing, steps, epochs."""

from __future__ import annotations

import numpy as np

from tests.unit.planning.shapes import report, spec
from trainforge.data.tokens import token_stats
from trainforge.planning.work import Lengths, data_shape, lengths_from_stats, pack, planned_work, validation_passes


def test_the_rebuilt_lengths_keep_the_counts_and_the_total():
    rng = np.random.default_rng(0)
    lengths = np.concatenate([rng.integers(20, 64, 700), rng.integers(65, 300, 280), rng.integers(1500, 5000, 20)])
    stats = token_stats(lengths, "tok", 1024)
    assert stats is not None
    rebuilt = lengths_from_stats(stats)
    assert rebuilt.examples == len(lengths)
    assert abs(sum(n * count for n, count in rebuilt.counts.items()) - lengths.sum()) / lengths.sum() < 0.005
    assert max(rebuilt.counts) <= lengths.max()
    # the examples over max_seq_len are the histogram's: none moves across a bucket edge
    assert rebuilt.truncated(1024) == stats.truncated_examples == 20


def test_packing_from_the_histogram_is_within_a_few_percent_of_packing_the_real_lengths():
    """The quickstart's 1,200 chitchat examples as the chat template tokenizes them (lengths of 15-200)."""
    rng = np.random.default_rng(1)
    lengths = np.clip(rng.gamma(6.0, 11.5, 1200).astype(int), 15, 200)
    exact = Lengths({int(n): int(c) for n, c in zip(*np.unique(lengths, return_counts=True), strict=True)})
    stats = token_stats(lengths, "tok", 128)
    assert stats is not None
    estimated = lengths_from_stats(stats)
    for max_seq_len in (128, 256, 1024):
        assert abs(pack(estimated, max_seq_len) / pack(exact, max_seq_len) - 1) < 0.06, max_seq_len
    # a lower bound holds exactly: no sequence holds more than max_seq_len tokens
    assert pack(exact, 256) >= exact.kept(256) / 256


def test_best_fit_decreasing_on_a_known_multiset():
    # 4 x 60 fill two rows of 128 in pairs; 3 x 100 take a row each and leave 28 that a 20 fills
    assert pack(Lengths({60: 4, 100: 3, 20: 2}), 128) == 5
    assert pack(Lengths({500: 3}), 128) == 3  # truncated, one row each


def test_max_steps_fixes_the_steps_and_epochs_follow_from_the_sequences():
    work = planned_work(
        spec(hyperparameters="{max_steps: 20, batch_size: 8, max_seq_len: 128}"), data_shape(spec(), report()), 1
    )
    assert work.steps == 20 and work.tokens_per_step == 8 * 128
    assert work.epochs == round(20 * 8 / work.sequences, 3)
    assert work.examples == 1140 and work.evaluation_examples == 60


def test_epochs_decide_the_steps_over_every_process():
    shape = data_shape(spec(), report())
    one = planned_work(spec(hyperparameters="{epochs: 2, batch_size: 4, max_seq_len: 256}"), shape, 1)
    four = planned_work(spec(hyperparameters="{epochs: 2, batch_size: 4, max_seq_len: 256}"), shape, 4)
    assert one.steps == -(-2 * one.sequences // 4)
    assert four.steps == -(-2 * one.sequences // 16) and four.tokens_per_step == 4 * one.tokens_per_step


def test_dpo_trains_on_pairs_of_two_rows():
    work = planned_work(
        spec(method="dpo", hyperparameters="{epochs: 1, batch_size: 2, max_seq_len: 256}"),
        data_shape(spec(), report()),
        1,
    )
    assert work.sequences == 1140 and work.tokens_per_step == 2 * 2 * 256 and work.padding_fraction == 0


def test_validation_runs_every_eval_every_steps_and_at_the_end():
    job = spec(hyperparameters="{eval_every: 50}")
    assert validation_passes(job, 100) == 2
    assert validation_passes(job, 120) == 3


def test_without_a_tokenizer_the_tokens_come_from_the_bytes():
    bare = report().model_copy(update={"token_stats": None})
    shape = data_shape(spec(), bare)
    assert not shape.counted and shape.train.examples == 1140
    assert list(shape.train.counts) == [75]  # 300 bytes an example / 4 bytes a token
