"""Reading a manifest: YAML (bounded, with positions) -> JSON Schema and semantic checks -> `Manifest`.

    model.py      the result: Manifest, JobSpec, Location, assets, rows, positions, reserved names
    load.py       load_manifest: every problem found is raised together, as one ManifestError
    files.py      reading input files: regular files only, never past a limit
    yaml_tree.py  the YAML text -> plain data with a line and column for every value (limits, aliases)
    rows.py       CSV rows of variables        assets.py  local image files and URLs
    checks.py     the manifest's JSON Schema and the checks it cannot express
    report_key.py `report:`: the fields its title template and grouping name, against the job specs

Pure apart from reading those files, and light to import: the request validator (batchgen.registry)
and jsonschema are not loaded by importing this package.
"""

from batchgen.manifest.assets import MAX_ASSET_BYTES
from batchgen.manifest.checks import manifest_schema
from batchgen.manifest.load import load_manifest
from batchgen.manifest.model import (
    ASSET_PLACEHOLDER_PREFIX,
    BUILTIN_VARS,
    JOB_SETTINGS,
    UPLOAD_DEFAULTS,
    Asset,
    JobSpec,
    LocalAsset,
    Location,
    Manifest,
    Positions,
    Rows,
    UrlAsset,
    is_identifier,
)
from batchgen.manifest.rows import MAX_ROWS_BYTES
from batchgen.manifest.yaml_tree import MAX_MANIFEST_BYTES, MAX_MANIFEST_VALUES, MAX_NESTING_DEPTH

__all__ = [
    "ASSET_PLACEHOLDER_PREFIX",
    "BUILTIN_VARS",
    "JOB_SETTINGS",
    "MAX_ASSET_BYTES",
    "MAX_MANIFEST_BYTES",
    "MAX_MANIFEST_VALUES",
    "MAX_NESTING_DEPTH",
    "MAX_ROWS_BYTES",
    "UPLOAD_DEFAULTS",
    "Asset",
    "JobSpec",
    "LocalAsset",
    "Location",
    "Manifest",
    "Positions",
    "Rows",
    "UrlAsset",
    "is_identifier",
    "load_manifest",
    "manifest_schema",
]
