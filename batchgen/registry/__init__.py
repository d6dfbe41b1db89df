"""The model registry: model specs, catalogs, each model's documented rules, request validation, prices.

spec.py        ModelSpec: one model, read from a registry answer (checked by hardening.py)
catalog.py     looking models up: shipped snapshots, chains of catalogs
rules.py       MODEL_RULES: each model's documented rules (the file to edit to add a model's rules)
hardening.py   checking a registry answer: sizes, depth, $refs, patterns, prices; the schema dialect
validation.py  RequestValidator and validate_request: the registry schema plus the rules
pricing.py     quotes from a model's `pricing` object

The live registry and the run directory's cache of it are read by `batchgen.client.models` (I/O).
"""

from batchgen.registry.catalog import (
    ChainCatalog,
    ListableCatalog,
    ModelCatalog,
    SnapshotCatalog,
    known_model_ids,
)
from batchgen.registry.hardening import (
    MAX_MODEL_DEPTH,
    MAX_MODEL_TEXT,
    MAX_MODEL_VALUES,
    MAX_UNIT_PRICE_USD,
    normalise_schema,
)
from batchgen.registry.pricing import format_usd, quote, rate
from batchgen.registry.rules import (
    DOCUMENTED_DEFAULTS,
    GENERIC_PARAMETERS,
    MODEL_RULES,
    Issue,
    ModelRules,
    Rule,
    echoable_defaults,
    is_reference_url,
    rule_checks,
    total_duration,
)
from batchgen.registry.spec import ModelSpec
from batchgen.registry.validation import RequestValidator, fast_predicate, merge_issues, validate_request

__all__ = [
    "DOCUMENTED_DEFAULTS",
    "GENERIC_PARAMETERS",
    "MAX_MODEL_DEPTH",
    "MAX_MODEL_TEXT",
    "MAX_MODEL_VALUES",
    "MAX_UNIT_PRICE_USD",
    "MODEL_RULES",
    "ChainCatalog",
    "Issue",
    "ListableCatalog",
    "ModelCatalog",
    "ModelRules",
    "ModelSpec",
    "RequestValidator",
    "Rule",
    "SnapshotCatalog",
    "echoable_defaults",
    "fast_predicate",
    "format_usd",
    "is_reference_url",
    "known_model_ids",
    "merge_issues",
    "normalise_schema",
    "quote",
    "rate",
    "rule_checks",
    "total_duration",
    "validate_request",
]
