"""Command groups of the `retain` CLI, registered by retain.cli."""
