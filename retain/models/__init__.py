"""Per-tenant models: the math as plain functions, testable without Spark (Spark only computes the summaries they take)."""
