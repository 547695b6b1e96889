"""Parquet bar files read as the CSV reader's rows (column name -> text).

Each value becomes the text the CSV reader would have seen, so both formats go
through the same parsing: timestamps as ISO 8601 in UTC (a naive Parquet
timestamp is UTC), integers as digits, decimals (Parquet DECIMAL) exactly, and
floating-point columns by their shortest round-trip text (``46216.93``: what a
CSV writer prints for the same double). Read a row group at a time, so a large
file is never held in memory whole.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import pyarrow.parquet as pq

BATCH_ROWS = 65_536


def parquet_text(value: Any) -> str:
    """A Parquet value as the text a CSV file would hold for it."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def parquet_rows(path: str | os.PathLike[str]
                 ) -> Iterator[tuple[int, dict[str, str], list[str]]]:
    """(row number, row as text, header) for each row, as ``csv.DictReader`` gives them
    (row numbers count from 2, as a CSV's first data line)."""
    try:
        file = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow's errors name neither the file nor the problem well
        raise ValueError(f"{path}: not a readable Parquet file ({exc})") from None
    header = list(file.schema_arrow.names)
    if not header:
        raise ValueError(f"{path}: a Parquet file without columns")
    line = 1
    for batch in file.iter_batches(batch_size=BATCH_ROWS):
        columns = [batch.column(i).to_pylist() for i in range(batch.num_columns)]
        for values in zip(*columns, strict=True):
            line += 1
            row = {name: parquet_text(v) for name, v in zip(header, values, strict=True)}
            yield line, row, header
