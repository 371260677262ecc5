"""Where each source resumes: positions per part (Kinesis shard, Redshift watermark) and the S3
objects (key and ETag) already submitted.

Reads go through the write profile (LOCAL_QUORUM), like the writes: a consumer restarted against
another node of the datacenter must see the checkpoint its predecessor wrote, or it re-reads more
than it needs to.
"""

from __future__ import annotations

from datetime import datetime, timezone

from retain.store.cassandra import CassandraStore

# The position of a closed Kinesis shard read to its end; its children may then be read.
SHARD_END = "SHARD_END"


class Checkpoints:
    def __init__(self, store: CassandraStore, source: str) -> None:
        self.store = store
        self.source = source

    def _quorum_read(self, cql: str, params: tuple) -> list:
        return list(self.store.write(cql, params))

    def get(self, part: str) -> str | None:
        rows = self._quorum_read("SELECT position FROM source_checkpoints WHERE source = ? AND part = ?",
                                 (self.source, part))
        return rows[0].position if rows else None

    def all(self) -> dict[str, str]:
        rows = self._quorum_read("SELECT part, position FROM source_checkpoints WHERE source = ?", (self.source,))
        return {row.part: row.position for row in rows}

    def set(self, part: str, position: str) -> None:
        """Record that everything of ``part`` up to ``position`` was submitted."""
        self.store.write("INSERT INTO source_checkpoints (source, part, position, updated_at) VALUES (?, ?, ?, ?)",
                         (self.source, part, position, datetime.now(timezone.utc)))

    def objects(self) -> dict[str, set[str]]:
        """Object key → ETags already submitted (one partition read per round, not one per object)."""
        found: dict[str, set[str]] = {}
        for row in self._quorum_read("SELECT object_key, etag FROM source_objects WHERE source = ?", (self.source,)):
            found.setdefault(row.object_key, set()).add(row.etag)
        return found

    def has_object(self, key: str, etag: str) -> bool:
        return bool(self._quorum_read("SELECT etag FROM source_objects WHERE source = ? AND object_key = ? AND etag = ?",
                                      (self.source, key, etag)))

    def mark_object(self, key: str, etag: str, rows: int) -> None:
        """Record that the object with this ETag was submitted whole."""
        self.store.write("INSERT INTO source_objects (source, object_key, etag, rows, processed_at) VALUES (?, ?, ?, ?, ?)",
                         (self.source, key, etag, rows, datetime.now(timezone.utc)))

    def clear(self) -> None:
        """Forget every position and object of the source (when it is removed)."""
        self.store.write("DELETE FROM source_checkpoints WHERE source = ?", (self.source,))
        self.store.write("DELETE FROM source_objects WHERE source = ?", (self.source,))
