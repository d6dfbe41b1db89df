"""`batchgen plan` and `batchgen schema`: what a manifest expands to, checked, without sending anything."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen.cli.common import EXIT_OK, add_api_flags, add_only_flag, example, say

if TYPE_CHECKING:
    from batchgen.cli.common import Commands


def add_plan(commands: Commands) -> None:
    plan = commands.add_parser(
        "plan",
        help="show the jobs, cost quote and validation errors; submits nothing",
        description="Expand and validate a manifest. Exit 0 when valid, 2 otherwise. Offline (no key) "
        "nothing leaves the machine: models are checked against the snapshots shipped with batchgen. "
        "With OXEN_API_KEY (or --api-base, --sandbox) it reads the live model registry "
        "(GET /api/ai/models/{id}) and checks that the upload repository exists; it never submits.",
        epilog=example(
            "batchgen plan jobs/spring-campaign.yaml --only product=tote --budget 10",
            "the tote jobs, their quote, and where a $10 budget stops them",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
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
    add_only_flag(plan)
    plan.add_argument(
        "--budget", metavar="USD", help="say where this budget stops the run (default: run.budget_usd)"
    )
    plan.add_argument("--sandbox", action="store_true", help="look models up in the built-in emulator")
    add_api_flags(plan)
    plan.set_defaults(handler=cmd_plan)


def add_schema(commands: Commands) -> None:
    schema = commands.add_parser(
        "schema",
        help="print the manifest's JSON Schema (for editors)",
        epilog=example("batchgen schema > manifest.schema.json", "for an editor's YAML language server"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    schema.set_defaults(handler=cmd_schema)


def cmd_schema(args: argparse.Namespace) -> int:
    from batchgen.commands import manifest_schema

    print(json.dumps(manifest_schema(), indent=2))
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from batchgen.commands import describe, format_plan, plan_manifest, write_plan_json

    summary = plan_manifest(
        args.manifest,
        only=args.only,
        budget=args.budget,
        output_dir=args.output_dir,
        sandbox=args.sandbox,
        api_base=args.api_base,
        api_key=args.api_key,
        say=say,
    )
    if args.json:
        write_plan_json(summary.chosen, sys.stdout.write)
        return EXIT_OK
    done = frozenset(k for k, state in summary.states.items() if state == "done")
    print(format_plan(summary.chosen, done_keys=done))
    if summary.selection is not None:
        chosen, planned = len(summary.chosen.jobs), len(summary.plan.jobs)
        print(f"  chosen by {summary.selection}: {chosen} of {planned} planned jobs")
    if summary.spend is not None and summary.spend.generations:
        print(f"  {describe(summary.spend, sandbox=args.sandbox)}")
    if summary.budget is not None:
        print(f"  {summary.budget}")
    return EXIT_OK
