"""Helpers for the manifest/plan tests: write a manifest (and its files) to tmp_path, plan it."""

from __future__ import annotations

import struct
import textwrap
import zlib
from pathlib import Path

import pytest

from batchgen.errors import ManifestError
from batchgen.manifest import Manifest, load_manifest
from batchgen.planning import Plan, build_plan
from batchgen.registry import SnapshotCatalog

KLING = "kling-video-o3-pro-reference-to-video"
HEADER = f"version: 1\nname: t\nmodel: {KLING}\n"


def tiny_png(colour: bytes = b"\xff\x00\x00") -> bytes:
    """A valid 1x1 PNG of `colour`."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"\x00" + colour))
        + chunk(b"IEND", b"")
    )


class Workspace:
    """A temporary folder to write a manifest and its files into."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.catalog = SnapshotCatalog()

    def write(self, text: str, name: str = "m.yaml", files: dict[str, bytes | str] | None = None) -> Path:
        for rel, content in (files or {}).items():
            target = self.root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(content, str):
                target.write_text(content, "utf-8")
            else:
                target.write_bytes(content)
        path = self.root / name
        path.write_text(textwrap.dedent(text), "utf-8")
        return path

    def load(self, text: str, files: dict[str, bytes | str] | None = None) -> Manifest:
        return load_manifest(self.write(text, files=files), file="m.yaml")

    def plan(self, text: str, files: dict[str, bytes | str] | None = None) -> Plan:
        return build_plan(load_manifest(self.write(text, files=files), file="m.yaml"), self.catalog)

    def errors(self, text: str, files: dict[str, bytes | str] | None = None) -> list[str]:
        """Every problem of loading + planning `text`, as strings (fails if there is none)."""
        with pytest.raises(ManifestError) as caught:
            self.plan(text, files)
        return [str(p).replace(str(self.root) + "/", "") for p in caught.value.problems]


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    """A Workspace in a fresh temporary directory."""
    return Workspace(tmp_path)
