"""Pull sources: Kinesis streams, S3 prefixes and Redshift queries, read at least once and submitted to
the `ingest` queue; the worker's message-id dedupe makes their effect happen exactly once."""
