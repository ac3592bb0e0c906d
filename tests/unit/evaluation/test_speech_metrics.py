"""Word and character error rates, which of them the gate reads (CER for languages written without word
spaces, WER otherwise), and the gate on a speech report (its delta absolute; forgetting has no speech set,
which the verdict says)."""

from __future__ import annotations

import numpy as np

from trainforge.contracts import EvaluationReport, MetricComparison
from trainforge.evaluation.gate import SPEECH_FORGETTING_NOTE, decide
from trainforge.evaluation.speech_metrics import (
    char_errors,
    edit_distance,
    error_rate,
    gated_rate,
    normalise,
    unspaced_characters,
    word_errors,
)
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


def test_normalising_keeps_combining_marks_and_blanks_only_punctuation_and_symbols():
    # Thai vowel signs and tone marks, Devanagari vowel signs are Mn/Mc: part of the word, not punctuation
    assert normalise("ภาษาไทยที่ดี!") == "ภาษาไทยที่ดี"
    assert char_errors("ภาษาไทยทีดี", "ภาษาไทยที่ดี") == (1, 12)  # a missing tone mark is an error
    assert normalise("नमस्ते, दुनिया।") == "नमस्ते दुनिया"  # the danda is punctuation (Po)
    assert word_errors("नमसत दनय", "नमस्ते दुनिया") == (2, 2)
    assert normalise("a+b = $5 «ok»") == "a b 5 ok"


def test_cer_is_gated_where_most_reference_characters_are_written_without_word_spaces():
    japanese = ("ja", "パスワードを再設定してください")
    assert word_errors("パスワードを再設定", japanese[1]) == (1, 1)  # one "word": WER cannot tell near from far
    assert gated_rate([japanese, ("zh", "请重置我的密码")]) == "cer"
    assert gated_rate([("th", "กรุณารีเซ็ตรหัสผ่าน"), ("en", "ok")]) == "cer"
    assert gated_rate([("en", "please reset my password"), ("ko", "비밀번호를 재설정해 주세요")]) == "wer"
    # mixed: by the share of reference characters (15 Japanese against 21 English ones, then 15 against 2)
    assert gated_rate([japanese, ("en", "please reset my password")]) == "wer"
    assert gated_rate([japanese, ("en", "ok")]) == "cer"
    # a record without a language is judged by the script of each character
    assert unspaced_characters(None, "パスワード reset") == (5, 10)
    assert gated_rate([(None, "请重置我的密码"), (None, "ok")]) == "cer"
    assert gated_rate([(None, "please reset my password")]) == "wer"
    assert gated_rate([]) == "wer"


def test_the_gate_holds_the_speech_rate_to_min_improvement_and_notes_the_missing_forgetting_check():
    def report(base: float, tuned: float, name: str = "wer") -> EvaluationReport:
        rate = MetricComparison(
            name=name, base=base, tuned=tuned, delta=base - tuned, ci_low=0, ci_high=0, higher_is_better=False
        )
        return EvaluationReport(
            run_id="r", base_model="b", tuned_model_uri="u", examples=3, primary=name, metrics=[rate], forgetting=None
        )

    spec = EvaluationSpec(min_improvement=0.1)
    passed = decide(report(0.5, 0.3), spec)
    assert passed.passed and passed.reasons[-1] == SPEECH_FORGETTING_NOTE
    assert not decide(report(0.5, 0.45), spec).passed
    by_characters = decide(report(0.4, 0.2, "cer"), spec)
    assert by_characters.passed and by_characters.reasons[0].startswith("cer improved by 20.0%")
    assert by_characters.reasons[-1] == SPEECH_FORGETTING_NOTE
