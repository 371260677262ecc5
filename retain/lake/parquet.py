"""Lake rows to Parquet and back, with the column types of :data:`retain.lake.schema.COLUMNS`."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from retain.lake.base import LakeError
from retain.lake.schema import COLUMNS

_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "timestamp_ms": pa.timestamp("ms", tz="UTC"),
    "int8": pa.int8(),
    "bool": pa.bool_(),
    "float64": pa.float64(),
}
COMPRESSION = "zstd"


@lru_cache(maxsize=1)
def arrow_schema() -> pa.Schema:
    """The lake's Arrow schema; every column nullable, as old staged rows may lack new columns."""
    return pa.schema([pa.field(name, _TYPES[kind], nullable=True) for name, kind in COLUMNS])


def rows_to_parquet(rows: list[dict[str, Any]]) -> bytes:
    """One Parquet file holding ``rows`` in order; a missing column is null, an unknown one an error."""
    schema = arrow_schema()
    known = set(schema.names)
    for row in rows:
        unknown = set(row) - known
        if unknown:
            # Refuse rather than drop: a column the lake does not know means mismatched code versions.
            raise LakeError(f"lake row has unknown column(s) {', '.join(sorted(unknown))}")
    try:
        table = pa.Table.from_pydict({name: [row.get(name) for row in rows] for name in schema.names},
                                     schema=schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise LakeError(f"lake rows do not fit the lake schema: {exc}") from exc
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression=COMPRESSION)
    return sink.getvalue().to_pybytes()


def read_parquet(data: bytes) -> pa.Table:
    """The table in one Parquet file's bytes."""
    try:
        return pq.read_table(pa.BufferReader(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise LakeError(f"not a readable Parquet file: {exc}") from exc
