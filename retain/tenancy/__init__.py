"""Tenants: their keys (write keys ingest, read keys serve) and their configuration."""
