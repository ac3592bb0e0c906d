"""Sharded validation equals the whole pass: random datasets cut at random shard boundaries (records and
duplicates straddling shards, several objects, gzip and plain text among them) merge into the report
``validate_dataset`` gives, field for field; and the pieces that make that so, each on its own."""

from __future__ import annotations

import gzip
import io
import itertools
import random
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, models, pre_tokenizers

from trainforge.data import ValidationOptions, validate_dataset
from trainforge.data.partial import PartialReport, merge_partials, validate_shard
from trainforge.data.reader import LineSpan
from trainforge.data.shards import options_from_json, options_to_json, plan_shards
from trainforge.local.file_store import FileStore
from trainforge.spec import DataLimits

WORDS = ["the", "order", "shipped", "late", "refund", "account", "password", "reset", "invoice", "billing"]
MAX_LINE = 400
_DIR = Path(tempfile.mkdtemp(prefix="tf-shards-"))


def _tokenizer() -> Path:
    vocab = {"[UNK]": 0} | {word: index + 1 for index, word in enumerate(WORDS)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    path = _DIR / "tok" / "tokenizer.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path))
    return path


TOKENIZER = _tokenizer()


def _sentence(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words))


def _line(rng: random.Random, pool: list[bytes]) -> bytes:
    """One line: mostly valid chat records, with exact and near copies of earlier ones, short texts (no
    shingle at all), PII, and every kind of broken line."""
    roll = rng.random()
    if pool and roll < 0.15:
        return rng.choice(pool)  # an exact duplicate, possibly in another shard or object
    if pool and roll < 0.25:  # a near duplicate: one word changed
        record = orjson.loads(rng.choice(pool))
        words = record["messages"][-1]["content"].split()
        words[rng.randrange(len(words))] = rng.choice(WORDS)
        record["messages"][-1]["content"] = " ".join(words)
        return orjson.dumps(record)
    if roll < 0.30:
        return rng.choice([b"", b"   ", b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe broken utf-8"])
    if roll < 0.34:
        return orjson.dumps({"messages": [{"role": "assistant", "content": "wrong order"}]})
    if roll < 0.36:
        return b'{"messages": [{"role": "user", "content": "' + b"x" * MAX_LINE + b'"}]}'  # over max_line_bytes
    if roll < 0.40:
        return orjson.dumps({"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "ok"}]})
    answer = _sentence(rng, rng.randint(12, 40))
    if roll < 0.45:
        answer += " mail jane.doe@example.com"
    record = {"messages": [{"role": "user", "content": _sentence(rng, rng.randint(3, 12))}]}
    record["messages"].append({"role": "assistant", "content": answer})
    line = orjson.dumps(record)
    pool.append(line)
    return line


def _dataset(seed: int, objects: int, lines: int, kinds: list[str]) -> list[str]:
    rng = random.Random(seed)
    folder = _DIR / f"data-{seed}-{objects}-{lines}-{'-'.join(kinds)}"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    pool: list[bytes] = []
    uris = []
    for index in range(objects):
        kind = kinds[index % len(kinds)]
        if kind == "text":
            body = "\n\n".join(_sentence(rng, rng.randint(5, 30)) for _ in range(rng.randint(1, 6))).encode()
            path = folder / f"part-{index}.txt"
            path.write_bytes(body)
        else:
            body = b"\n".join(_line(rng, pool) for _ in range(rng.randint(0, lines)))
            if rng.random() < 0.7:
                body += b"\n"
            path = folder / (f"part-{index}.jsonl" + (".gz" if kind == "gzip" else ""))
            path.write_bytes(gzip.compress(body) if kind == "gzip" else body)
        uris.append(path.as_uri())
    return uris


def _options(fmt: str, pii: str, tokens: bool, uris: list[str]) -> ValidationOptions:
    destinations = {uri: (_DIR / "redacted" / f"{index % 2}.jsonl").as_uri() for index, uri in enumerate(uris)}
    return ValidationOptions(
        format=fmt,  # type: ignore[arg-type]
        limits=DataLimits(max_line_bytes=MAX_LINE, max_file_bytes=60_000),
        pii=pii,  # type: ignore[arg-type]
        validation_fraction=0.2,
        split_seed=7,
        max_errors_per_code=3,
        tokenizer_file=TOKENIZER if tokens else None,
        max_seq_len=24,
        redact_into=destinations if pii == "redact" else {},
    )


def _sharded(uris: list[str], options: ValidationOptions, shard_bytes: int, seed: int) -> tuple[dict, list[bytes]]:
    store = FileStore()
    plan = plan_shards(uris, store, options, shard_bytes=shard_bytes)
    work = (_DIR / f"work-{seed}").as_uri()
    shards = list(plan.shards)
    random.Random(seed).shuffle(shards)  # workers finish in any order
    partials = [PartialReport.from_bytes(validate_shard(shard, store, options, work).to_bytes()) for shard in shards]
    return _fields(merge_partials(plan, partials, options)), _redacted(options)


def _fields(report) -> dict:
    return report.model_dump(mode="json", exclude={"created_at"})


def _redacted(options: ValidationOptions) -> list[bytes]:
    return [Path(uri.removeprefix("file://")).read_bytes() for uri in sorted(set(options.redact_into.values()))]


@settings(max_examples=120, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
@given(
    seed=st.integers(0, 10_000),
    objects=st.integers(1, 4),
    lines=st.integers(0, 120),
    kinds=st.lists(st.sampled_from(["plain", "plain", "plain", "gzip", "text"]), min_size=1, max_size=4),
    shard_bytes=st.integers(1, 3000),
    fmt=st.sampled_from(["auto", "auto", "chat"]),
    pii=st.sampled_from(["report", "redact", "reject"]),
    tokens=st.booleans(),
)
def test_merged_shards_equal_the_whole_pass(seed, objects, lines, kinds, shard_bytes, fmt, pii, tokens):
    uris = _dataset(seed, objects, lines, kinds)
    options = _options(fmt, pii, tokens, uris)
    whole = _fields(validate_dataset(uris, FileStore(), options))
    whole_redacted = _redacted(options)
    merged, merged_redacted = _sharded(uris, options, shard_bytes, seed)
    assert merged == whole
    assert merged_redacted == whole_redacted


def test_duplicates_straddling_shards_are_found_with_their_first_location(tmp_path):
    """Given an object cut into several spans with copies far from their originals, when merged, then each
    duplicate names the line (and object) of its first occurrence, as the whole pass does."""
    rng = random.Random(3)
    pool: list[bytes] = []
    first = b"\n".join(_line(rng, pool) for _ in range(200)) + b"\n"
    second = b"\n".join(rng.choice(pool) for _ in range(50)) + b"\n"
    (tmp_path / "a.jsonl").write_bytes(first)
    (tmp_path / "b.jsonl").write_bytes(second)
    uris = [(tmp_path / "a.jsonl").as_uri(), (tmp_path / "b.jsonl").as_uri()]
    options = replace(_options("auto", "report", False, uris), max_errors_per_code=1000)
    plan = plan_shards(uris, FileStore(), options, shard_bytes=MAX_LINE)
    assert sum(shard.kind == "span" for shard in plan.shards) > 10
    merged = merge_partials(
        plan, [validate_shard(s, FileStore(), options, tmp_path.as_uri()) for s in plan.shards], options
    )
    whole = validate_dataset(uris, FileStore(), options)
    assert merged.exact_duplicates == whole.exact_duplicates >= 50
    assert merged.duplicate_examples == whole.duplicate_examples


@pytest.mark.parametrize("data", [b"a\nbb\nccc\n", b"a\nbb\nccc", b"\n\n\nxyz\n\n", b"one long line without end"])
def test_line_spans_cover_every_line_once_at_any_cut(tmp_path, data):
    path = tmp_path / "f"
    path.write_bytes(data)
    expected = data.split(b"\n")
    if data.endswith(b"\n"):
        expected = expected[:-1]
    for size in range(1, len(data) + 2):
        cuts = [*range(0, len(data), size), len(data)]
        seen, lines = b"", 0
        for start, end in itertools.pairwise(cuts):
            with path.open("rb") as handle:
                handle.seek(max(start - 1, 0))
                span = LineSpan(handle, start, end)
                seen += io.BufferedReader(span).read()
                lines += span.lines
        assert seen == data, size
        assert lines == len(expected), size


def test_options_travel_as_json():
    options = _options("chat", "redact", True, ["file:///a"])
    assert options_from_json(orjson.loads(orjson.dumps(options_to_json(options))), tokenizer_file=TOKENIZER) == options


def test_a_missing_partial_rejects_the_dataset_and_names_the_shard(tmp_path):
    rng = random.Random(5)
    (tmp_path / "a.jsonl").write_bytes(b"\n".join(_line(rng, []) for _ in range(100)) + b"\n")
    uris = [(tmp_path / "a.jsonl").as_uri()]
    options = _options("chat", "report", False, uris)
    plan = plan_shards(uris, FileStore(), options, shard_bytes=2000)
    partials = [validate_shard(s, FileStore(), options, tmp_path.as_uri()) for s in plan.shards[1:]]
    report = merge_partials(plan, partials, options)
    assert not report.ok and report.error_counts["shard_failed"] == 1
    assert report.errors[-1].message == f"the validation of this object's bytes 0-{plan.shards[0].end} did not finish"


def test_the_planner_cuts_plain_json_lines_and_keeps_what_cannot_be_entered_whole(tmp_path):
    """Given a large plain object, a large gzip, a text file and one over max_file_bytes, when planned, then
    only the plain object is cut (with a digest item), and format: auto settles where the whole pass does."""
    rng = random.Random(9)
    body = b"\n".join(_line(rng, []) for _ in range(300)) + b"\n"
    (tmp_path / "a.jsonl").write_bytes(b"\n" * 10 + body)  # blank lines first: no record in the first block
    (tmp_path / "b.jsonl.gz").write_bytes(gzip.compress(body))
    (tmp_path / "c.txt").write_bytes(b"plain text\n\nanother paragraph\n")
    (tmp_path / "d.jsonl").write_bytes(body + body * 2)
    options = replace(
        _options("auto", "report", False, []), limits=DataLimits(max_line_bytes=MAX_LINE, max_file_bytes=len(body) * 2)
    )
    plan = plan_shards([tmp_path.as_uri()], FileStore(), options, shard_bytes=5 * MAX_LINE)
    kinds = {(Path(shard.uri).name, shard.kind) for shard in plan.shards}
    assert kinds == {
        ("a.jsonl", "span"),
        ("a.jsonl", "digest"),
        ("b.jsonl.gz", "object"),
        ("c.txt", "object"),
        ("d.jsonl", "object"),
    }
    spans = [shard for shard in plan.shards if shard.kind == "span"]
    assert spans[0].start == 0 and spans[-1].end == len(body) + 10
    assert all(a.end == b.start for a, b in itertools.pairwise(spans))
    assert spans[0].format is None  # the shard holding the first records detects, as the whole pass does
    assert {shard.format for shard in plan.shards[len(spans) :] if shard.kind != "digest"} == {"chat"}
