"""Command line: every config knob as a ``--flag``; runs the emulator in the foreground."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import types
import typing
from dataclasses import MISSING, fields
from typing import Any

from batchgen.emulator.config import EmulatorConfig, FaultConfig, LatencyConfig
from batchgen.emulator.server import Emulator

CLI_DEFAULTS: dict[str, Any] = {"port": 8765}  # a fixed, memorable port for humans
SECTIONS = (
    (EmulatorConfig, "emulator"),
    (LatencyConfig, "latency (simulated seconds)"),
    (FaultConfig, "faults (all off by default)"),
)


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _scalar(hint: Any) -> tuple[type, bool]:
    """The scalar type behind ``hint`` and whether None is allowed."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType) and type(None) in args:
        return next(arg for arg in args if arg is not type(None)), True
    return hint, False


def _add_knob(group: argparse._ArgumentGroup, name: str, hint: Any, default: Any, help_text: str) -> None:
    default = CLI_DEFAULTS.get(name, default)
    shown = f"{help_text} (default: {default if default not in (None, ()) else 'unset'})"
    kind, _ = _scalar(hint)
    if kind is bool:
        group.add_argument(_flag(name), action=argparse.BooleanOptionalAction, default=default, help=shown)
    elif typing.get_origin(kind) is tuple:
        group.add_argument(_flag(name), nargs="+", default=default, metavar="ROUTE", help=shown)
    else:
        metavar = {int: "N", float: "X", str: "TEXT"}[kind]
        group.add_argument(_flag(name), type=kind, default=default, metavar=metavar, help=shown)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one ``--flag`` per knob of EmulatorConfig, LatencyConfig and FaultConfig."""
    for cls, title in SECTIONS:
        group = parser.add_argument_group(title)
        hints = typing.get_type_hints(cls)
        for item in fields(cls):
            if "help" in item.metadata:
                default = item.default if item.default is not MISSING else None
                _add_knob(group, item.name, hints[item.name], default, item.metadata["help"])


def _values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    values = {item.name: getattr(args, item.name) for item in fields(cls) if "help" in item.metadata}
    return {name: tuple(value) if isinstance(value, list) else value for name, value in values.items()}


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The EmulatorConfig the parsed flags describe (raises ValueError naming a bad field)."""
    latency = LatencyConfig(**_values(LatencyConfig, args))
    faults = FaultConfig(**_values(FaultConfig, args))
    return EmulatorConfig(**_values(EmulatorConfig, args), latency=latency, faults=faults)


async def _serve(config: EmulatorConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # Windows has no signal handlers in asyncio
            loop.add_signal_handler(sig, stop.set)
    async with Emulator(config) as emulator:
        print(f"Oxen API emulator listening on {emulator.base_url}", flush=True)
        print(f"API key: {emulator.api_key}", flush=True)
        print("Press Ctrl-C to stop.", flush=True)
        await stop.wait()
    print("Emulator stopped.", flush=True)


def run(args: argparse.Namespace) -> int:
    """Run the emulator in the foreground until Ctrl-C; 0 on a clean stop, 2 on a bad knob."""
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"emulator: error: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(config))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m batchgen.emulator",
        description="A local emulator of Oxen.ai's hosted inference API (queue, events, models, uploads).",
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))
