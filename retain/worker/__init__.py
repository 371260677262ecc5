"""Celery workers: the app (queues, routing, reliability settings) and the worker bootstrap."""
