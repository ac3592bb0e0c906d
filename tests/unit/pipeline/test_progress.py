"""How far a validation has got: the local bar's figures."""

from __future__ import annotations

import io

from rich.console import Console

from trainforge.data.validation import ValidationProgress
from trainforge.pipeline.progress import ValidationBar


def test_the_bar_shows_the_records_and_bytes_validated_out_of_the_dataset():
    out = io.StringIO()
    with ValidationBar(Console(file=out, width=120)) as bar:
        bar(ValidationProgress(records=10, bytes=1_000, total_bytes=4_000))
        bar(ValidationProgress(records=12_345, bytes=4_000, total_bytes=4_000))
    assert "12,345 records" in out.getvalue() and "4.0/4.0 kB" in out.getvalue()
