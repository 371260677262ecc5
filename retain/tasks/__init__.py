"""Celery tasks, one module per queue; each task parses its arguments and calls a plain function."""
