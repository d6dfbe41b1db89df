"""The model registry: model specs, catalogs, each model's documented rules, request validation, prices.

spec.py        ModelSpec: one model, read from a registry answer (checked by hardening.py)
catalog.py     looking models up: shipped snapshots, chains of catalogs
rules.py       MODEL_RULES: each model's documented rules (the file to edit to add a model's rules)
hardening.py   checking a registry answer: sizes, depth, $refs, patterns, prices; the schema dialect
validation.py  RequestValidator and validate_request: the registry schema plus the rules
pricing.py     quotes from a model's `pricing` object

The live registry and the run directory's cache of it are read by `batchgen.client.models` (I/O).
"""

from batchgen.registry.catalog import ChainCatalog, SnapshotCatalog
from batchgen.registry.hardening import MAX_MODEL_DEPTH, MAX_MODEL_VALUES, normalise_schema
from batchgen.registry.rules import MODEL_RULES, is_reference_url
from batchgen.registry.spec import ModelSpec
from batchgen.registry.validation import RequestValidator, fast_predicate, validate_request

__all__ = [
    "MAX_MODEL_DEPTH",
    "MAX_MODEL_VALUES",
    "MODEL_RULES",
    "ChainCatalog",
    "ModelSpec",
    "RequestValidator",
    "SnapshotCatalog",
    "fast_predicate",
    "is_reference_url",
    "normalise_schema",
    "validate_request",
]
