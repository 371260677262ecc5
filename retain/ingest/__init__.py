"""Ingestion: accepted batches go to the broker; workers write each event exactly once to the
event store, the lake staging area and the real-time counters."""
