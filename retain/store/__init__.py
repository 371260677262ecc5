"""Where retain keeps state: the Cassandra session and schema, and the Redis clients."""
