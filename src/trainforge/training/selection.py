"""What a run's periodic validation chooses by: the best step it ends with (``loop._restore_best``), a tuning
trial's objective (``tuning.objective``), and, with a new lowest loss (``loop._validate``), what resets early
stopping's patience.

- ``eval_loss``: the validation loss, lower is better.
- ``exact_match``: the share of validation examples whose every labelled token is the model's most likely
  token given the reference before it, higher is better; ties go to the lower loss. Greedy decoding emits
  the argmax at each position, so an example that counts is one whose answer greedy decoding reproduces
  token for token, end-of-turn token included; read off the validation pass's own forward, with no
  generate loop. It is a stricter, token-level stand-in for the evaluation's exact match
  (``evaluation.text_metrics``), not the same figure: that one compares the last assistant turn's
  generated text after normalising case, punctuation and articles, within ``max_new_tokens``; this one
  scores every labelled token of the example (every assistant turn, and what the chat template labels
  after the end-of-turn token, such as ChatML's newline), and an answer cut by ``max_seq_len`` counts by
  its kept part. On
  short-answer tasks (classification, extraction) the loss keeps falling on confident wrong answers and
  stops falling while answers are still getting right: on the tuning benchmark (docs/benchmarks.md, Tuning)
  trials chosen by loss ended 20-60 steps in, while exact match kept rising to the end of the default run.

A tuner minimises, so a trial's objective under ``exact_match`` is its error, 1 - exact match.
"""

from __future__ import annotations

from trainforge.contracts import SelectionMetric

#: a loss this much lower counts as better (evaluation noise of a repeated forward is far below it)
LOSS_TOLERANCE = 1e-4
#: an exact match this much higher counts as better (one example of a million; shares are exact fractions)
EXACT_TOLERANCE = 1e-6


def improves(
    metric: SelectionMetric, loss: float, exact_match: float | None, best_loss: float, best_exact_match: float | None
) -> bool:
    """Whether a validation's (loss, exact match) beats the best so far under ``metric``."""
    if metric == "exact_match" and exact_match is not None:
        if best_exact_match is None or exact_match > best_exact_match + EXACT_TOLERANCE:
            return True
        if exact_match < best_exact_match - EXACT_TOLERANCE:
            return False
    return loss < best_loss - LOSS_TOLERANCE


def objective(metric: SelectionMetric, loss: float, exact_match: float | None) -> float:
    """The value a tuner minimises for one validation: the loss, or the share of examples answered wrong."""
    if metric == "exact_match":
        if exact_match is None:
            raise ValueError("the selection metric is exact_match but the validation measured none")
        return 1.0 - exact_match
    return loss
