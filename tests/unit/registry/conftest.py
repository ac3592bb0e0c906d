from __future__ import annotations

import pytest

from trainforge.contracts import EvaluationReport, GateVerdict, MetricComparison
from trainforge.registry import Registration

IMAGE = "763104351884.dkr.ecr.us-east-1.amazonaws.com/djl-inference:0.36.0-lmi20.0.0-cu128-v1.0"


@pytest.fixture
def registration():
    def make(run_id: str, passed: bool, approval: str, model_uri: str = "s3://art/runs/r/model/") -> Registration:
        metric = MetricComparison(
            name="perplexity", base=10, tuned=8, delta=0.2, ci_low=0.1, ci_high=0.3, higher_is_better=False
        )
        report = EvaluationReport(
            run_id=run_id,
            base_model="tiny",
            tuned_model_uri=model_uri,
            examples=3,
            metrics=[metric],
            forgetting=None,
            verdict=GateVerdict(passed=passed, reasons=["x"]),
        )
        return Registration(
            run_id=run_id,
            name="support",
            model_uri=model_uri,
            evaluation=report,
            approval=approval,  # type: ignore[arg-type]
            bom_uri=f"s3://art/runs/{run_id}/bom.json",
            params={"lr": 0.1},
            history=[{"step": 1, "loss": 3.0}, {"step": 2, "loss": 2.5}, {"step": 2, "eval_loss": 2.7}],
            report_uri=f"s3://art/runs/{run_id}/evaluation/report.json",
            container={
                "Image": IMAGE,
                "ModelDataSource": {
                    "S3DataSource": {"S3Uri": model_uri, "S3DataType": "S3Prefix", "CompressionType": "None"}
                },
            },
        )

    return make
