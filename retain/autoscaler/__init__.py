"""The autoscaler: queue backlog to worker fleet size (filled by the autoscaler issue)."""
