"""A run's status reads a partial report's counts from its header, not its ~92 bytes per record."""

from __future__ import annotations

from typing import BinaryIO

import numpy as np

from trainforge.data.partial import PartialReport, read_partial_counts, store_partial
from trainforge.data.shards import Shard
from trainforge.local.file_store import FileStore


class CountingStore(FileStore):
    """The file store, counting the bytes read through ``open``."""

    read = 0

    def open(self, uri: str, start: int = 0) -> BinaryIO:
        body = super().open(uri, start)
        plain = body.read

        def read(size: int = -1) -> bytes:
            data = plain(size)
            self.read += len(data)
            return data

        body.read = read  # type: ignore[method-assign]
        return body


def test_the_counts_come_from_the_header_without_reading_the_records(tmp_path):
    records = 200_000
    shard = Shard(index=3, kind="object", file_index=0, input_uri="file:///d", uri="file:///d/a.jsonl", size=9)
    partial = PartialReport(
        shard=shard,
        records=records,
        valid=records,
        bytes_read=123_456_789,
        record_lines=np.arange(records, dtype=np.int64),
        digests=np.arange(records, dtype=np.uint64),
    )
    uri = store_partial(partial, tmp_path.as_uri())
    store = CountingStore()
    assert read_partial_counts(store, uri) == (records, 123_456_789)
    assert store.read < 4096 < (tmp_path / "partials" / "000003.npz").stat().st_size // 100
