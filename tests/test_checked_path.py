"""rundir.checked_path: where a result may be written, decided without resolving the whole path."""

from __future__ import annotations

from pathlib import Path

import pytest

from batchgen.rundir.layout import UnsafePathError, checked_path


def test_a_path_that_does_not_exist_yet_is_the_run_directory_joined_with_it(tmp_path: Path) -> None:
    """A path nothing exists at yet is the run directory joined with it, and no directory is remembered."""
    known: set[str] = set()
    assert checked_path(tmp_path, "videos/mug/16x9.mp4", known) == tmp_path / "videos/mug/16x9.mp4"
    assert known == set()  # nothing exists yet: nothing was found real


def test_real_directories_are_remembered_and_not_looked_at_again(tmp_path: Path) -> None:
    """Existing directories on the way are remembered in known_dirs; the result file itself never is."""
    (tmp_path / "videos/mug").mkdir(parents=True)
    known: set[str] = set()
    checked_path(tmp_path, "videos/mug/16x9.mp4", known)
    assert known == {f"{tmp_path}/videos", f"{tmp_path}/videos/mug"}
    (tmp_path / "videos/mug/16x9.mp4").write_bytes(b"x")  # a file is never remembered as a directory
    checked_path(tmp_path, "videos/mug/16x9.mp4", known)
    assert known == {f"{tmp_path}/videos", f"{tmp_path}/videos/mug"}


@pytest.mark.parametrize("where", ["videos", "videos/mug", "videos/mug/16x9.mp4"])
def test_a_symlink_at_any_component_is_refused(tmp_path: Path, where: str) -> None:
    """A symlink at videos/, a subdirectory or the file itself is refused."""
    outside = tmp_path / "outside"
    outside.mkdir()
    run_dir = tmp_path / "run"
    link = run_dir / where
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(outside)
    with pytest.raises(UnsafePathError, match="symlink"):
        checked_path(run_dir, "videos/mug/16x9.mp4", set())


@pytest.mark.parametrize("relative", ["../up.mp4", "/etc/passwd", "videos/../../up.mp4"])
def test_names_that_climb_out_are_refused_before_any_lookup(tmp_path: Path, relative: str) -> None:
    """`..` and absolute paths are refused by the lexical check, before any lookup."""
    with pytest.raises(UnsafePathError):
        checked_path(tmp_path, relative, set())
