"""The run's plan beside what its training reported (planned vs actual time, tokens and cost), for the run
summary and the evaluation report. Its own module because Prepare (``steps``), both runners and the
handlers read it, while the Plan step that writes ``plan.json`` (``plan_step``) itself reads ``steps``."""

from __future__ import annotations

from trainforge.contracts import Plan, PlannedActual, TrainingResult
from trainforge.pipeline.layout import RunLayout
from trainforge.planning.plan import planned_vs_actual
from trainforge.store import open_store


def planned_vs_actual_at(artifacts_uri: str, run_id: str, result: TrainingResult | None) -> list[PlannedActual]:
    """The run's plan.json beside what training reported; nothing when either is missing."""
    uri = RunLayout(artifacts_uri, run_id).plan
    store = open_store(uri)
    if result is None or not store.exists(uri):
        return []
    return planned_vs_actual(Plan.model_validate_json(store.read_bytes(uri)), result)
