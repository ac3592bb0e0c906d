"""Word and character error rates, and the gate on a speech report (WER is the primary metric, its delta
absolute; forgetting has no speech set, which the verdict says)."""

from __future__ import annotations

import numpy as np

from trainforge.contracts import EvaluationReport, MetricComparison
from trainforge.evaluation.gate import SPEECH_FORGETTING_NOTE, decide
from trainforge.evaluation.speech_metrics import char_errors, edit_distance, error_rate, normalise, word_errors
from trainforge.spec import EvaluationSpec


def test_edit_distance_counts_substitutions_insertions_and_deletions():
    assert edit_distance("kitten", "sitting") == 3
    assert edit_distance([], ["a", "b"]) == 2 and edit_distance(["a"], []) == 1


def test_wer_and_cer_normalise_and_sum_over_the_corpus():
    assert normalise("Hello, World!") == "hello world"
    assert word_errors("please reset my password", "Please reset the password.") == (1, 4)
    assert word_errors("", "two words") == (2, 2)
    assert char_errors("パスワードを再設定", "パスワードを再設定してください") == (6, 15)  # CER for Japanese
    errors, lengths = np.array([1, 0, 3]), np.array([4, 2, 4])
    assert error_rate(errors, lengths) == 0.4  # 4 edits over 10 words, not the mean of per-clip rates


def test_the_gate_holds_wer_to_min_improvement_and_notes_the_missing_forgetting_check():
    def report(base: float, tuned: float) -> EvaluationReport:
        wer = MetricComparison(
            name="wer", base=base, tuned=tuned, delta=base - tuned, ci_low=0, ci_high=0, higher_is_better=False
        )
        return EvaluationReport(
            run_id="r", base_model="b", tuned_model_uri="u", examples=3, primary="wer", metrics=[wer], forgetting=None
        )

    spec = EvaluationSpec(min_improvement=0.1)
    passed = decide(report(0.5, 0.3), spec)
    assert passed.passed and passed.reasons[-1] == SPEECH_FORGETTING_NOTE
    assert not decide(report(0.5, 0.45), spec).passed
