"""The bad-manifest corpus: every file in tests/plan/bad/ fails with exactly the message beside it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batchgen.errors import ManifestError
from batchgen.manifest import load_manifest
from batchgen.planning import build_plan
from batchgen.registry import SnapshotCatalog

BAD = Path(__file__).parent / "bad"
CASES = sorted(p.stem for p in BAD.glob("*.yaml"))
# BATCHGEN_UPDATE_EXPECTED=1 rewrites the .expected files from the current messages (then review the diff).
UPDATE = os.environ.get("BATCHGEN_UPDATE_EXPECTED") == "1"


def failure_text(name: str) -> str:
    """str(ManifestError) for one case, with the corpus directory removed from every path."""
    with pytest.raises(ManifestError) as caught:
        build_plan(load_manifest(BAD / f"{name}.yaml"), SnapshotCatalog())
    return str(caught.value).replace(str(BAD) + os.sep, "") + "\n"


def test_corpus_is_large_and_every_case_has_an_expected_message() -> None:
    """The corpus holds at least 40 cases and each has its .expected file (and no stray ones)."""
    assert len(CASES) >= 40
    expected = sorted(p.stem for p in BAD.glob("*.expected"))
    assert expected == CASES or UPDATE


def test_readme_lists_every_case() -> None:
    """tests/plan/bad/README.md describes every case, from the case's first comment line."""
    readme = (BAD / "README.md").read_text("utf-8")
    for name in CASES:
        first = (BAD / f"{name}.yaml").read_bytes().decode("utf-8", "replace").splitlines()[0]
        assert first.startswith("# "), f"{name}.yaml must start with a '# description' line"
        assert f"`{name}`" in readme, f"{name} missing from README.md"


@pytest.mark.parametrize("name", CASES)
def test_bad_manifest_fails_with_the_expected_message(name: str) -> None:
    """Loading and planning the case raises ManifestError whose text is exactly NAME.expected."""
    text = failure_text(name)
    expected_file = BAD / f"{name}.expected"
    if UPDATE:
        expected_file.write_text(text, "utf-8")
    assert text == expected_file.read_text("utf-8")
