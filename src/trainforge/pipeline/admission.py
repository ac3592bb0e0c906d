"""Admission: from a job spec (and the data it names) to a RunRequest with a deterministic run id.

The run id is a hash of the spec's key and version, its sha256 and the versions of every data object,
so the same upload always yields the same id. The id is the Step Functions execution name, which makes
a duplicate S3 event unable to start a second execution, and it names the run's folder locally.
"""

from __future__ import annotations

import hashlib
import json

from trainforge.contracts import DatasetRef, RunRequest, Trigger
from trainforge.errors import DatasetRejected, SpecInvalid
from trainforge.pipeline.layout import RunLayout
from trainforge.spec import JobSpec, parse_spec, spec_sha256
from trainforge.store import ObjectStore, join, open_store


def resolve_data_uri(data_root: str, reference: str) -> str:
    """Spec data paths are keys under the data root (``datasets/x/train.jsonl``) or full URIs."""
    if reference.startswith(("s3://", "file://")):
        return reference
    if reference.startswith("/") or ".." in reference.split("/"):
        raise SpecInvalid(
            f"data path '{reference}' must be a key under the data root (like datasets/NAME/...) or a URI"
        )
    return join(data_root, reference)


def dataset_refs(spec: JobSpec, data_root: str, store: ObjectStore | None = None) -> list[DatasetRef]:
    """Every object the spec's data names, with its current version, in key order."""
    refs = []
    for reference in filter(None, (spec.data.train, spec.data.validation)):
        uri = resolve_data_uri(data_root, reference)
        found = list((store or open_store(uri)).list(uri))
        if not found:
            raise DatasetRejected(
                f"no data at {uri} (data.{'train' if reference == spec.data.train else 'validation'} in the spec)"
            )
        for info in found:
            version = info.version_id or (store or open_store(uri)).head(info.uri).version_id
            refs.append(DatasetRef(uri=info.uri, version_id=version))
    return refs


def run_id_for(
    job_name: str, spec_uri: str, spec_version: str | None, spec_hash: str, datasets: list[DatasetRef]
) -> str:
    material = json.dumps([spec_uri, spec_version, spec_hash, sorted((d.uri, d.version_id or "") for d in datasets)])
    return f"{job_name}-{hashlib.sha256(material.encode()).hexdigest()[:12]}"


def admit(
    spec_uri: str, spec_bytes: bytes, spec_version: str | None, data_root: str, artifacts_uri: str, trigger: Trigger
) -> tuple[RunRequest, JobSpec]:
    spec = parse_spec(spec_bytes, spec_uri)
    datasets = dataset_refs(spec, data_root)
    digest = spec_sha256(spec_bytes)
    run_id = run_id_for(spec.name, spec_uri, spec_version, digest, datasets)
    request = RunRequest(
        run_id=run_id,
        job_name=spec.name,
        spec_uri=spec_uri,
        spec_sha256=digest,
        spec_version_id=spec_version,
        datasets=datasets,
        trigger=trigger,
        artifacts_uri=RunLayout(artifacts_uri, run_id).root + "/",
    )
    return request, spec


def record_admission(request: RunRequest, spec: JobSpec, artifacts_uri: str) -> None:
    """The run folder starts with the spec it runs and the request that admitted it (idempotent)."""
    layout = RunLayout(artifacts_uri, request.run_id)
    store = open_store(layout.root)
    store.write_bytes(layout.spec, spec.model_dump_json(indent=2).encode(), "application/json")
    store.write_bytes(layout.request, request.model_dump_json(indent=2).encode(), "application/json")


def load_run(artifacts_uri: str, run_id: str) -> tuple[RunRequest, JobSpec]:
    layout = RunLayout(artifacts_uri, run_id)
    store = open_store(layout.root)
    return RunRequest.model_validate_json(store.read_bytes(layout.request)), JobSpec.model_validate_json(
        store.read_bytes(layout.spec)
    )
