"""Spark jobs that train each tenant's models from the lake (filled by the models issue)."""
