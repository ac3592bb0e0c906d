"""`trainforge validate`: exit 0 accepted, 1 rejected, 2 usage error."""

from __future__ import annotations

import json

from tests.conftest import chat
from trainforge.cli import main


def test_accepted_rejected_and_usage_exit_codes(write_jsonl, tmp_path, capsys):
    good = write_jsonl([chat()], name="good.jsonl")
    bad = write_jsonl([chat(), {"messages": []}], name="bad.jsonl")
    assert main(["validate", str(good)]) == 0
    assert main(["validate", str(bad)]) == 1
    assert "bad.jsonl:2" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "missing.jsonl")]) == 2
    assert main(["validate"]) == 2
    assert main(["validate", str(good), "--format", "nonsense"]) == 2


def test_json_output_and_report_file(write_jsonl, tmp_path, capsys):
    path = write_jsonl([chat(), chat(assistant="x@y.com")])
    report_path = tmp_path / "out" / "report.json"
    assert main(["validate", str(path), "--json", "--report", str(report_path)]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["ok"] and printed["pii_counts"] == {"email": 1}
    assert json.loads(report_path.read_text())["report_uri"] == report_path.as_uri()
    assert report_path.with_suffix(".md").read_text().startswith("# Dataset report: accepted")


def test_spec_settings_apply(write_jsonl, tmp_path):
    data = write_jsonl([chat(assistant="AKIAIOSFODNN7EXAMPLE")])
    spec = tmp_path / "job.yaml"
    spec.write_text(f"name: t\nbase_model: tiny\ndata:\n  train: {data}\n  pii: reject\n")
    assert main(["validate", str(data), "--spec", str(spec)]) == 1
    spec.write_text("name: t\nbase_model: tiny\ndata:\n  trian: x\n")
    assert main(["validate", str(data), "--spec", str(spec)]) == 2
