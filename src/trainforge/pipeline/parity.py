"""Parity before traffic: the deployed endpoint answers the evaluated model's reference prompts
(``evaluation/parity.json``, see ``trainforge.evaluation.parity``) greedily, and its answers and token
log-probabilities must match. No managed service checks this, and a merged LoRA, a dtype, a chat template,
stop tokens or the serving engine can each change answers silently.

The candidate is asked by variant name while it takes no traffic (``serving.rollout.stage``). Token by
token, the endpoint must choose the reference's token and give it a log-probability within
``tolerance`` nats. One exception: where the reference's chosen token led the runner-up by less than
``2 * tolerance``, the two are numerically tied, and the endpoint choosing the other ends that answer's
comparison instead of failing it. Anything else fails the check, and ``report.problems`` says where.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from trainforge.contracts import Contract, ParityAnswer, ParityReference
from trainforge.pipeline.layout import RunLayout
from trainforge.serving.rollout import EndpointDeployer
from trainforge.store import join, open_store

#: where evaluation writes the reference, beside its report
REFERENCE_FILE = "parity.json"


class ParityReport(Contract):
    passed: bool
    endpoint: str
    variant: str
    tolerance: float
    prompts: int
    tokens_compared: int = 0
    max_logprob_difference: float = 0.0
    #: answers whose comparison ended at a numerical tie the endpoint resolved the other way
    ties: int = 0
    problems: list[str] = Field(default_factory=list)
    skipped: str = ""


def reference_uri(artifacts_uri: str, run_id: str) -> str:
    return join(RunLayout(artifacts_uri, run_id).evaluation, REFERENCE_FILE)


def report_uri(artifacts_uri: str, run_id: str) -> str:
    return RunLayout(artifacts_uri, run_id).path("parity-check.json")


def load_reference(artifacts_uri: str, run_id: str) -> ParityReference | None:
    uri = reference_uri(artifacts_uri, run_id)
    store = open_store(uri)
    return ParityReference.model_validate_json(store.read_bytes(uri)) if store.exists(uri) else None


def request_body(answer: ParityAnswer, max_new_tokens: int) -> dict[str, Any]:
    """The chat request both engines (LMI/vLLM and this project's server) answer with OpenAI's logprobs."""
    return {"messages": answer.messages, "max_tokens": max_new_tokens, "temperature": 0, "logprobs": True}


def served_tokens(reply: dict[str, Any]) -> list[tuple[str, float]]:
    choice = (reply.get("choices") or [{}])[0]
    content = (choice.get("logprobs") or {}).get("content")
    if content is None:
        raise ValueError("the endpoint answered without logprobs (it must support OpenAI's logprobs: true)")
    return [(str(item["token"]), float(item["logprob"])) for item in content]


def same_token(served: str, expected: str) -> bool:
    """Whether the endpoint's token is evaluation's. The reference decodes each token alone
    (``tokenizer.decode([id])``), which drops a SentencePiece token's leading space ("▁Hello" -> "Hello",
    Llama 2, Mistral); vLLM decodes it in context (" Hello"): equal but for that leading space."""
    return served == expected or served.replace("▁", " ").lstrip() == expected.replace("▁", " ").lstrip()


def compare_answer(
    index: int, answer: ParityAnswer, served: list[tuple[str, float]], tolerance: float
) -> tuple[int, float, bool, list[str]]:
    """(tokens compared, largest log-probability difference, ended at a tie, problems) for one prompt."""
    compared, largest, problems = 0, 0.0, []
    for position, expected in enumerate(answer.tokens):
        if position >= len(served):
            problems.append(
                f"prompt {index}: the endpoint stopped after {len(served)} tokens; evaluation went on with "
                f"{expected.token!r} (stop tokens differ?)"
            )
            break
        token, logprob = served[position]
        if not same_token(token, expected.token):
            if expected.margin < 2 * tolerance:
                return compared, largest, True, problems
            problems.append(
                f"prompt {index}, token {position}: the endpoint answered {token!r} where evaluation answered "
                f"{expected.token!r} (margin {expected.margin:.3f})"
            )
            break
        compared += 1
        difference = abs(logprob - expected.logprob)
        largest = max(largest, difference)
        if difference > tolerance:
            problems.append(
                f"prompt {index}, token {position} {token!r}: log-probability {logprob:.5f} on the endpoint, "
                f"{expected.logprob:.5f} in evaluation (difference {difference:.5f} > {tolerance})"
            )
            break
    else:
        if len(served) > len(answer.tokens):
            problems.append(
                f"prompt {index}: the endpoint went on past evaluation's {len(answer.tokens)} tokens with "
                f"{served[len(answer.tokens)][0]!r} (stop tokens differ?)"
            )
    return compared, largest, False, problems


def check_parity(
    deployer: EndpointDeployer, endpoint: str, variant: str, reference: ParityReference | None, tolerance: float
) -> ParityReport:
    """Ask the variant every reference prompt and compare; never raises for a mismatch (the report says)."""
    base = {"endpoint": endpoint, "variant": variant, "tolerance": tolerance}
    if reference is None or not reference.answers:
        why = "no reference prompts (evaluation wrote none: chat data and evaluation.generation_samples >= 1)"
        return ParityReport(passed=True, prompts=0, skipped=why, **base)
    compared, largest, ties, problems = 0, 0.0, 0, []
    for index, answer in enumerate(reference.answers):
        reply = deployer.invoke(endpoint, variant, request_body(answer, reference.max_new_tokens))
        try:
            served = served_tokens(reply)
        except (ValueError, KeyError, TypeError) as exc:
            problems.append(f"prompt {index}: {exc}")
            continue
        tokens, difference, tie, found = compare_answer(index, answer, served, tolerance)
        compared, largest, ties = compared + tokens, max(largest, difference), ties + tie
        problems += found
    return ParityReport(
        passed=not problems,
        prompts=len(reference.answers),
        tokens_compared=compared,
        max_logprob_difference=largest,
        ties=ties,
        problems=problems,
        **base,
    )


def save_report(artifacts_uri: str, run_id: str, report: ParityReport) -> str:
    uri = report_uri(artifacts_uri, run_id)
    open_store(uri).write_bytes(uri, report.model_dump_json(indent=2).encode(), "application/json")
    return uri
