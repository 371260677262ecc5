"""Repair orchestration, kept small (what Cassandra Reaper does for a cluster).

``retain db repair`` repairs a keyspace node by node, each node's primary token ranges only, one
node at a time, under a cluster-wide lease held in Cassandra itself, and records every node's run;
``retain db repair status`` compares each node's last successful repair with the keyspace's
gc_grace_seconds, past which a deleted row can come back.
"""
