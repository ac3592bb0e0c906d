"""The AWS inputs of continuous evaluation: each variant's serving figures read from CloudWatch (moto's
GetMetricData over what PutMetricData stored) into the request rows the job reads, and the captured
exchanges listed from SageMaker's capture layout since a given hour."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from moto import mock_aws

from trainforge.pipeline.continuous import (
    MAX_REQUEST_ROWS,
    cloudwatch_requests,
    cloudwatch_series,
    completion_tokens,
)
from trainforge.serving.capture import capture_line, read_captures
from trainforge.store import open_store

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


def put(client, endpoint: str, variant: str, when: datetime, **figures: float) -> None:
    names = {"invocations": "Invocations", "errors5xx": "Invocation5XXErrors", "latency": "ModelLatency"}
    dimensions = [{"Name": "EndpointName", "Value": endpoint}, {"Name": "VariantName", "Value": variant}]
    client.put_metric_data(
        Namespace="AWS/SageMaker",
        MetricData=[
            {"MetricName": names[key], "Dimensions": dimensions, "Timestamp": when, "Value": value}
            for key, value in figures.items()
        ],
    )


def test_each_variants_figures_become_request_rows(aws_env):
    with mock_aws():
        client = boto3.client("cloudwatch")
        start = NOW - timedelta(hours=1)
        put(client, "support", "v1", start + timedelta(minutes=7), invocations=10, errors5xx=1, latency=200_000)
        put(client, "support", "v1", start + timedelta(minutes=22), invocations=30, latency=100_000)
        put(client, "support", "v2", start + timedelta(minutes=7), invocations=5, latency=400_000)
        put(client, "other", "v1", start + timedelta(minutes=7), invocations=99, latency=1)  # another endpoint
        series = cloudwatch_series(client, "support", ["v1", "v2"], start, NOW, period=300)

    assert sorted(len(periods) for periods in series.values()) == [1, 2]
    rows = cloudwatch_requests(series, {"v1": 12.0})
    assert len(rows["v1"]) == 40 and len(rows["v2"]) == 5
    assert [r["status"] for r in rows["v1"]].count(500) == 1
    assert sorted({r["latency_ms"] for r in rows["v1"]}) == [100.0, 200.0]  # microseconds to ms
    assert all(r["completion_tokens"] == 12.0 for r in rows["v1"])
    assert "completion_tokens" not in rows["v2"][0]  # no captured answer reported usage


def test_a_busy_endpoint_is_sampled_keeping_its_error_rate():
    busy = {datetime(2026, 1, 1, 10, m, tzinfo=UTC): {"invocations": 50_000.0, "errors5xx": 500.0} for m in range(4)}
    busy[datetime(2026, 1, 1, 10, 0, tzinfo=UTC)]["latency"] = 80_000.0
    (rows,) = cloudwatch_requests({"v1": busy}, {}).values()
    assert len(rows) == MAX_REQUEST_ROWS
    assert sum(r["status"] == 500 for r in rows) / len(rows) == pytest.approx(0.01)
    assert {r["latency_ms"] for r in rows} == {80.0}  # periods without latency get the variant's mean


def exchange_line(question: str, answer: str, tokens: int) -> str:
    response = {"choices": [{"message": {"content": answer}}], "usage": {"completion_tokens": tokens}}
    line = capture_line(
        json.dumps({"messages": [{"role": "user", "content": question}]}).encode(),
        "application/json",
        json.dumps(response).encode(),
        "application/json",
        event_id=question,
        when=NOW,
    )
    return json.dumps(line) + "\n"


def test_captures_are_listed_from_sagemakers_layout_since_an_hour(aws_env):
    """SageMaker writes capture/ENDPOINT/VARIANT/yyyy/mm/dd/hh/*.jsonl; only the hours since are read."""
    with mock_aws():
        s3 = boto3.client("s3")
        s3.create_bucket(Bucket="artifacts")
        hours = {"old": NOW - timedelta(days=3), "new": NOW - timedelta(hours=1)}
        for name, when in hours.items():
            for variant, tokens in (("v1", 4), ("v2", 8)):
                key = f"capture/support/{variant}/{when:%Y/%m/%d/%H}/{name}-{variant}.jsonl"
                s3.put_object(Bucket="artifacts", Key=key, Body=exchange_line(f"{name} {variant}", "ok", tokens))
        prefix = "s3://artifacts/capture/support"
        everything = list(read_captures(open_store(prefix), prefix))
        recent = list(read_captures(open_store(prefix), prefix, NOW - timedelta(hours=2)))

    assert len(everything) == 4
    assert sorted((e.variant, e.event_id) for e in recent) == [("v1", "new v1"), ("v2", "new v2")]
    assert recent[0].messages() == [{"role": "user", "content": "new v1"}] and recent[0].answer() == "ok"
    assert completion_tokens(recent) == {"v1": 4.0, "v2": 8.0}
