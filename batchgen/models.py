"""Which model specs a run validates against: the shipped snapshots, plus the live registry for
models the package does not ship (fetched once per run, only for the models a manifest names)."""

from __future__ import annotations

from batchgen.api import OxenClient
from batchgen.errors import NotFound
from batchgen.manifest import Manifest
from batchgen.schema import ChainCatalog, ModelCatalog, ModelSpec, SnapshotCatalog


def manifest_model_ids(manifest: Manifest) -> set[str]:
    """Model ids written literally in the manifest (templated ones are resolved by the plan)."""
    ids = {manifest.model} | {spec.model for spec in manifest.jobs}
    return {i for i in ids if i and "{" not in i}


async def model_catalog(client: OxenClient | None, manifest: Manifest) -> ModelCatalog:
    """Snapshots first (so a rerun and `plan` work offline), then the API for the rest.

    A model the API does not know is left out, so the plan reports it with a "did you mean".
    """
    shipped = SnapshotCatalog()
    missing = sorted(i for i in manifest_model_ids(manifest) if shipped.get(i) is None)
    if client is None or not missing:
        return shipped
    fetched = []
    for model_id in missing:
        try:
            fetched.append(ModelSpec.from_api(await client.get_model(model_id), model_id))
        except NotFound:
            continue
    return ChainCatalog(shipped, SnapshotCatalog(fetched))
