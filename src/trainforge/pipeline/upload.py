"""What happens when an object lands in the data bucket: validate it and store the report.

The uploaded object is only read (at the version the event names); the report goes under the artifacts
root, ``reports/<key>.json`` plus a Markdown twin.
"""

from __future__ import annotations

from trainforge.catalog import base_modality
from trainforge.contracts import DataIssue, DatasetReport, SpecReport
from trainforge.data import ValidationOptions, validate_dataset
from trainforge.data.report import write_report
from trainforge.errors import SpecInvalid
from trainforge.media.checks import format_refusal, media_object_report
from trainforge.media.references import is_media_file
from trainforge.pipeline.keys import classify_key
from trainforge.settings import Settings
from trainforge.spec import DataLimits, parse_spec
from trainforge.store import join, open_store, pin_version


def report_uri_for(artifacts_uri: str, key: str) -> str:
    return join(artifacts_uri, "reports", key + ".json")


def check_spec(text: bytes, spec_uri: str) -> SpecReport:
    try:
        spec = parse_spec(text, spec_uri)
    except SpecInvalid as exc:
        problems = exc.details or [("", None, exc.message)]
        errors = [
            DataIssue(file=spec_uri, line=line, field=path, code="invalid_spec", message=message)
            for path, line, message in problems
        ]
        return SpecReport(ok=False, spec_uri=spec_uri, errors=errors)
    refusal = None if spec.data.format == "auto" else format_refusal(spec.data.format, base_modality(spec.base_model))
    if refusal is not None:  # an explicit format; format: auto is judged when validation detects it
        issue = DataIssue(
            file=spec_uri, line=None, field="data.format", code="format_not_for_base_model", message=refusal
        )
        return SpecReport(ok=False, spec_uri=spec_uri, job_name=spec.name, errors=[issue])
    return SpecReport(ok=True, spec_uri=spec_uri, job_name=spec.name)


def validate_upload(
    data_root: str, raw_key: str, version_id: str | None, settings: Settings, *, encoded: bool = True
) -> DatasetReport | SpecReport:
    """Validate one uploaded object (a dataset file or a job spec), at the version the event names,
    and store its report."""
    uploaded = classify_key(raw_key, encoded=encoded)
    source_uri = pin_version(join(data_root, uploaded.key), version_id)
    report_uri = report_uri_for(settings.resolved_artifacts_uri(), uploaded.key)
    artifacts = open_store(report_uri)
    if uploaded.kind == "job":
        report = check_spec(open_store(source_uri).read_bytes(source_uri), source_uri).model_copy(
            update={"report_uri": report_uri}
        )
        artifacts.write_bytes(report_uri, report.model_dump_json(indent=2).encode(), "application/json")
        return report
    if is_media_file(uploaded.key):  # audio or an image beside the records: its header, here
        return write_report(media_object_report(source_uri, open_store(source_uri)), artifacts, report_uri)
    # the function's own guard (memory, 15 minutes): larger objects are refused with file_too_large
    options = ValidationOptions(limits=DataLimits(max_file_bytes=settings.max_object_bytes))
    dataset = validate_dataset([source_uri], open_store(source_uri), options)
    return write_report(dataset, artifacts, report_uri)
