"""Synthetic behaviour events with a known truth, for exercising and checking retain's models.

Users follow the processes the models assume — BG/NBD visits, Gamma-Gamma order values, Beta
channel propensities, an hour-of-week preference and Dirichlet category affinities — so a fitted
model can be compared with the parameters that generated its data. Output is Segment-format NDJSON
(the HTTP Tracking API's messages), deterministic per seed, plus ``truth.json`` and ``users.ndjson``.
"""

from retain.generator.params import CATEGORIES, TIMEZONES, GeneratorParams
from retain.generator.run import TRUTH_FILE, USERS_FILE, GenerationReport, GeneratorError, generate

__all__ = ["CATEGORIES", "TIMEZONES", "TRUTH_FILE", "USERS_FILE", "GenerationReport", "GeneratorError",
           "GeneratorParams", "generate"]
