"""Prometheus metrics of the API (retain.metrics.http), the workers (.worker) and the autoscaler
(.autoscaler); .registry holds where they live and how they are exposed. Logs: retain.logs."""
