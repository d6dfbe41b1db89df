"""`batchgen plan` and `batchgen schema`: what a manifest expands to, checked, without sending anything."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen.cli.common import EXIT_OK, OFFLINE, Endpoint, add_api_flags, api_base_of
from batchgen.config import UploadTarget
from batchgen.errors import UsageError

if TYPE_CHECKING:
    from batchgen.api import OxenClient
    from batchgen.cli.common import Commands
    from batchgen.manifest import Manifest
    from batchgen.planning import Plan


def add_plan(commands: Commands) -> None:
    plan = commands.add_parser(
        "plan",
        help="show the jobs, cost quote and validation errors; sends nothing",
        description="Expand and validate a manifest offline. Exit 0 when valid, 2 otherwise.",
    )
    plan.add_argument("manifest", type=Path)
    plan.add_argument("--json", action="store_true", help="print the whole plan as JSON")
    plan.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        default=Path("outputs"),
        help="where runs live, to count jobs already done (default: outputs)",
    )
    plan.add_argument("--sandbox", action="store_true", help="look models up in the built-in emulator")
    add_api_flags(plan)
    plan.set_defaults(handler=cmd_plan)


def add_schema(commands: Commands) -> None:
    schema = commands.add_parser("schema", help="print the manifest's JSON Schema (for editors)")
    schema.set_defaults(handler=cmd_schema)


def cmd_schema(args: argparse.Namespace) -> int:
    from batchgen.manifest import manifest_schema

    print(json.dumps(manifest_schema(), indent=2))
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from batchgen.manifest import load_manifest
    from batchgen.planning import format_plan, write_plan_json
    from batchgen.store import Journal

    manifest = load_manifest(args.manifest)
    key = args.api_key or os.environ.get("OXEN_API_KEY", "")
    online = args.sandbox or bool(key or args.api_base)
    endpoint = None if args.sandbox else Endpoint(api_base_of(args), key)
    from batchgen.batch import run_dir_name

    run_dir = args.output_dir / run_dir_name(manifest.name, sandbox=args.sandbox)
    plan, notes = asyncio.run(_plan_with_models(manifest, endpoint if online else OFFLINE, run_dir))
    for note in notes:
        print(f"batchgen: {note}", file=sys.stderr)
    done: frozenset[str] = frozenset()
    if (run_dir / "state.sqlite").is_file():
        journal = Journal.open_existing(run_dir)
        done = frozenset(k for k, r in journal.records().items() if r.state == "done")
        journal.close()
    if args.json:
        write_plan_json(plan, sys.stdout.write)
    else:
        print(format_plan(plan, done_keys=done))
    return EXIT_OK


async def _plan_with_models(
    manifest: Manifest, endpoint: Endpoint | object | None, run_dir: Path
) -> tuple[Plan, list[str]]:
    """The plan, and the lines to tell about the model descriptions it was made with. Online, the
    upload and delivery repositories are checked too (without writing to them)."""
    from batchgen.api import OxenClient
    from batchgen.batch import api_endpoint
    from batchgen.planning import build_plan
    from batchgen.registry.live import model_catalog

    if endpoint is OFFLINE:
        found = await model_catalog(None, manifest)
        return build_plan(manifest, found.catalog), found.notes
    assert endpoint is None or isinstance(endpoint, Endpoint)
    say = lambda text: print(f"batchgen: {text}", file=sys.stderr)  # noqa: E731
    given = None if endpoint is None else (endpoint.api_base, endpoint.api_key)
    async with api_endpoint(given, say) as (api_base, api_key), OxenClient(api_base, api_key) as client:
        found = await model_catalog(client, manifest, run_dir=run_dir)
        plan = build_plan(manifest, found.catalog)
        if endpoint is not None and manifest.upload and any(job.assets for job in plan.jobs):
            await _check_upload_repo(client, manifest.upload)
        if endpoint is not None and manifest.deliver and manifest.deliver.get("create") is not True:
            await _check_delivery_repo(client, manifest)
        return plan, found.notes


async def _check_delivery_repo(client: OxenClient, manifest: Manifest) -> None:
    """The delivery repository and branch exist (reads only: `plan` writes nothing)."""
    from batchgen.delivery.repo_api import RepoApi
    from batchgen.delivery.target import DeliveryTarget, template_variables

    assert manifest.deliver is not None
    target = DeliveryTarget.from_manifest(manifest.deliver, template_variables(manifest.name, manifest.vars))
    await RepoApi(client, target).check(write_probe=False)


async def _check_upload_repo(client: OxenClient, upload: Mapping[str, object]) -> None:

    target = UploadTarget.from_manifest(upload)
    if not target.create and not await client.repo_exists(target.namespace, target.repo):
        raise UsageError(
            f"the upload repository {target.namespace}/{target.repo} does not exist: create it "
            "(https://oxen.ai/new, public, so the model can fetch the images), or add "
            "`create: true` under `upload:` to let `batchgen run` create it"
        )
