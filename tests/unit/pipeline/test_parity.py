"""The parity comparison, token by token: what passes, what fails and what counts as a numerical tie."""

from __future__ import annotations

from trainforge.contracts import ParityAnswer, ParityReference, ParityToken
from trainforge.pipeline.parity import check_parity, compare_answer, request_body

ANSWER = ParityAnswer(
    messages=[{"role": "user", "content": "hello"}],
    text="i am fine",
    tokens=[
        ParityToken(token="i", logprob=-0.5, margin=2.0),
        ParityToken(token=" am", logprob=-0.7, margin=0.01),  # a near-tie: noise may pick the other
        ParityToken(token=" fine", logprob=-0.2, margin=3.0),
        ParityToken(token="<|im_end|>", logprob=-0.1, margin=4.0),
    ],
)
SAME = [("i", -0.5), (" am", -0.7), (" fine", -0.2), ("<|im_end|>", -0.1)]


def test_the_same_tokens_within_tolerance_pass():
    compared, largest, tie, problems = compare_answer(0, ANSWER, [(t, lp + 0.001) for t, lp in SAME], 0.02)
    assert (compared, tie, problems) == (4, False, []) and abs(largest - 0.001) < 1e-9


def test_a_log_probability_beyond_tolerance_fails_and_says_where():
    served = [SAME[0], (" am", -0.75), *SAME[2:]]
    _, _, _, problems = compare_answer(3, ANSWER, served, 0.02)
    assert len(problems) == 1 and "prompt 3, token 1 ' am'" in problems[0] and "difference 0.05000" in problems[0]


def test_another_token_fails_unless_the_reference_was_a_near_tie():
    at_tie = [SAME[0], (" was", -0.71), (" ok", -0.3)]
    compared, _, tie, problems = compare_answer(0, ANSWER, at_tie, 0.02)
    assert (compared, tie, problems) == (1, True, [])  # margin 0.01 < 2 * 0.02: the rest is not compared
    clear = [(" you", -0.5), *SAME[1:]]
    _, _, _, problems = compare_answer(0, ANSWER, clear, 0.02)
    assert "answered ' you' where evaluation answered 'i'" in problems[0]


def test_stopping_early_or_late_is_a_stop_token_difference():
    _, _, _, early = compare_answer(0, ANSWER, SAME[:3], 0.02)
    _, _, _, late = compare_answer(0, ANSWER, [*SAME, ("\n", -1.0)], 0.02)
    assert "stopped after 3 tokens" in early[0] and "went on past" in late[0]


class Replying:
    """Answers every parity request as given; the endpoint's side of the exchange."""

    def __init__(self, tokens: list[tuple[str, float]] | None) -> None:
        self.tokens, self.bodies = tokens, []

    def invoke(self, name, variant, body):
        self.bodies.append((name, variant, body))
        logprobs = None if self.tokens is None else {"content": [{"token": t, "logprob": lp} for t, lp in self.tokens]}
        return {"choices": [{"message": {"content": "x"}, "logprobs": logprobs}]}


def test_the_check_asks_the_variant_greedily_for_logprobs_and_reports():
    reference = ParityReference(run_id="r", max_new_tokens=4, answers=[ANSWER, ANSWER])
    endpoint = Replying(SAME)
    report = check_parity(endpoint, "support", "v2", reference, 0.02)
    assert report.passed and report.prompts == 2 and report.tokens_compared == 8
    assert endpoint.bodies[0] == ("support", "v2", request_body(ANSWER, 4))
    assert request_body(ANSWER, 4) | {"messages": None} == {
        "messages": None,
        "max_tokens": 4,
        "temperature": 0,
        "logprobs": True,
    }
    without = check_parity(Replying(None), "support", "v2", reference, 0.02)
    assert not without.passed and "without logprobs" in without.problems[0]
    skipped = check_parity(Replying(SAME), "support", "v2", None, 0.02)
    assert skipped.passed and skipped.prompts == 0 and "no reference prompts" in skipped.skipped


def test_a_sentencepiece_token_decoded_alone_matches_the_same_token_decoded_in_context():
    """Evaluation decodes each token alone, which drops a SentencePiece token's leading space ("▁am" -> "am");
    vLLM decodes it in context (" am"): the same token."""
    alone = ANSWER.model_copy(
        update={"tokens": [t.model_copy(update={"token": t.token.lstrip()}) for t in ANSWER.tokens]}
    )
    compared, _, _, problems = compare_answer(0, alone, SAME, 0.02)
    assert (compared, problems) == (4, [])
    _, _, _, problems = compare_answer(0, alone, [(" you", -0.5), *SAME[1:]], 0.02)
    assert "answered ' you' where evaluation answered 'i'" in problems[0]
