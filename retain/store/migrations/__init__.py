"""Ordered CQL migrations (NNNN_description.cql), applied by retain.store.schema."""
