"""The run directory's files: where results, `.part` downloads, sidecars and set-aside results live.

The only moves and writes that touch them are here (atomic, never following a name out of the
directory, never deleting a result); `checked_path`, the one path check, refuses any path that is
unsafe (`planning.paths.check_relative`) or leads through a symlink below the run directory.

```
RUN_DIR/
  videos/<output path>          results of the current plan, each with a <stem>.json sidecar
  superseded/<key12>/<path>     results whose path a later plan gave to another job (kept, not counted)
  superseded/replaced-<time>/…  files found at a result's path that no journaled job owned
  unverified/<key12>/<file>     a paid result whose bytes failed verification every time, with a
                                sidecar (`batchgen unverified` looks at it, accepts it or fetches again)
  unverified/<key12>/earlier-<time>/<file>   bytes kept earlier for the same job, moved aside
```
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import stat
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from batchgen.errors import StorageError
from batchgen.planning.paths import KEY_CHARS, check_relative
from batchgen.rundir.verify import fsync_directory

if TYPE_CHECKING:
    from batchgen.planning import Plan
    from batchgen.registry import ModelSpec

VIDEOS_DIR = "videos"
SUPERSEDED_DIR = "superseded"
UNVERIFIED_DIR = "unverified"
MODELS_DIR = "models"  # the live model descriptions a run read (a cache: see client.models.read_cached)
PLAN_NAME = "plan.json"


def prepare_run_dir(run_dir: Path) -> Path | None:
    """Create the run directory and prove it writable; returns where it really is when that differs
    (a symlink on the way), else None."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        probe = run_dir / ".write-test"
        probe.write_text("")
        probe.unlink()
        real = run_dir.resolve()
        return real if real != run_dir.absolute() else None
    except OSError as exc:
        raise StorageError(f"cannot write to the run directory {run_dir}: {exc.strerror or exc}") from exc


def write_run_files(run_dir: Path, manifest: Path, plan: Plan, live: Iterable[ModelSpec]) -> None:
    """What a run was made from: a copy of the manifest, the plan, and the live model descriptions."""
    from batchgen.planning import write_plan_json

    try:
        shutil.copyfile(manifest, run_dir / "manifest.yaml")
        for spec in live:
            (run_dir / MODELS_DIR).mkdir(exist_ok=True)
            write_json(run_dir / MODELS_DIR / f"{model_file_name(spec.id)}.json", spec.raw)
    except OSError as exc:
        raise StorageError(f"cannot write to the run directory {run_dir}: {exc.strerror or exc}") from exc
    tmp = run_dir / ".plan.json.tmp"
    try:
        with open(tmp, "w", encoding="utf-8") as file:
            write_plan_json(plan, file.write)
        tmp.replace(run_dir / PLAN_NAME)
    except (OSError, ValueError) as exc:  # ValueError: text the encoder refuses (a lone surrogate)
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        raise StorageError(f"cannot write {run_dir / PLAN_NAME}: {why}") from exc


def read_plan_json(run_dir: Path) -> Any:
    """The run directory's plan.json, parsed (OSError, ValueError when it cannot be read or parsed); a
    FIFO or device there is refused (StorageError) without blocking on it."""
    path = run_dir / PLAN_NAME
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, encoding="utf-8") as file:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StorageError(f"{path} is not a regular file")
        return json.loads(file.read())


def model_file_name(model_id: str) -> str:
    """A model id as a safe file name (never a path)."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in model_id).lstrip(".") or "model"


class UnsafePathError(ValueError):
    """A relative output path would escape the run directory or break on some file system."""


def part_path(final: Path) -> Path:
    """Where a download is streamed before it is verified and renamed: `<name>.part` beside it."""
    return final.with_name(final.name + ".part")


def sidecar_path(final: Path) -> Path:
    """The job's metadata file: `<stem>.json` beside the result."""
    return final.with_suffix(".json")


def ensure_inside(root: Path, relative: str) -> Path:
    """`checked_path` under `root` resolved (the run directory itself may be reached through a symlink)."""
    return checked_path(root.resolve(), relative)


def checked_path(base: Path, relative: str, known_dirs: set[str] | None = None) -> Path:
    """`base / relative` for a `base` already resolved: checked lexically, then one lstat per existing
    component (a symlink planted anywhere below `base` is refused), without resolving the whole path.
    Directories found real are added to `known_dirs` and not looked at again by later calls."""
    problem = check_relative(relative)
    if problem:
        raise UnsafePathError(f"output path {relative!r} {problem}")
    parts = relative.split("/")
    current = str(base)
    # Plain strings, not Path objects: this runs on the event loop for every download.
    for depth, part in enumerate(parts, start=1):
        current = f"{current}/{part}"
        if known_dirs is not None and current in known_dirs:
            continue
        try:
            mode = os.lstat(current).st_mode
        except (FileNotFoundError, NotADirectoryError):
            break  # nothing exists from here down yet: nothing can lead elsewhere
        if stat.S_ISLNK(mode):
            raise UnsafePathError(f"output path {relative!r} leads through a symlink at {current}")
        if known_dirs is not None and depth < len(parts) and stat.S_ISDIR(mode):
            known_dirs.add(current)
    return base / relative


def run_dir_name(name: str, *, sandbox: bool) -> str:
    """Sandbox runs live apart (`<name>.sandbox`): a placeholder clip must never pass for a real result."""
    return f"{name}.sandbox" if sandbox else name


def result_relpath(output_path: str) -> str:
    return f"{VIDEOS_DIR}/{output_path}"


def output_relpath(output_path: str, key: str, *, superseded: bool) -> str:
    """What every output (results.*, `status --json`, `run --json`) calls a job's `output_path`: where
    its result is or goes, relative to the run directory (`videos/…`, or `superseded/<key12>/…`)."""
    return superseded_relpath(output_path, key) if superseded else result_relpath(output_path)


def superseded_relpath(output_path: str, key: str) -> str:
    return f"{SUPERSEDED_DIR}/{key[:KEY_CHARS]}/{output_path}"


def unverified_relpath(output_path: str, key: str) -> str:
    """Where a result that failed verification is kept: `unverified/<key12>/<its file name>`."""
    return f"{UNVERIFIED_DIR}/{key[:KEY_CHARS]}/{output_path.rsplit('/', 1)[-1]}"


def set_aside_kept(run_dir: Path, output_path: str, key: str) -> str | None:
    """Make room at a job's `unverified_relpath`: bytes kept there earlier (and their sidecar) move to
    `unverified/<key12>/earlier-<UTC time>/`, never deleted. Returns where they went (None: nothing)."""
    kept = unverified_relpath(output_path, key)
    if not os.path.lexists(ensure_inside(run_dir, kept)):
        return None
    folder, name = kept.rsplit("/", 1)
    return _move_aside(run_dir, kept, f"{folder}/earlier", name)


def _move_aside(run_dir: Path, source: str, under: str, name: str) -> str | None:
    """Move `source` (and its sidecar) to the first free `<under>-<UTC time>[-N]/<name>`, never over
    anything. Returns where it went (None: nothing was at `source`)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    for attempt in range(1, 1000):
        destination = f"{under}-{stamp}{'' if attempt == 1 else f'-{attempt}'}/{name}"
        if not os.path.lexists(ensure_inside(run_dir, destination)):
            return destination if move_with_sidecar(run_dir, source, destination) else None
    raise StorageError(f"cannot find a free place under {under.rsplit('/', 1)[0]}/ for {name}")


@contextlib.contextmanager
def atomic_writer(path: Path) -> Iterator[TextIO]:
    """A text file (UTF-8, newlines as written) that replaces `path` only when the block ends without
    an exception: write a large file piece by piece, never half of it visible."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as file:  # text as given: CSV rows keep their CRLF
            yield file
        tmp.replace(path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc
        raise


def write_sidecar(path: Path, data: Any) -> None:
    """A result's sidecar: compact JSON written in place (no temporary file and rename, which cost as
    much again in a directory of thousands), never through a symlink. A crash mid-write leaves a sidecar
    that does not parse: the result beside it is then fetched again (never paid again), not trusted."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with open(fd, "wb") as file:
            file.write(sidecar_bytes(data))
    except OSError as exc:
        raise StorageError(f"cannot write {path}: {exc.strerror or exc}") from exc


def sidecar_bytes(data: Any) -> bytes:
    """A sidecar's exact bytes (what `write_sidecar` writes, and what a delivery sends)."""
    return (json.dumps(data, sort_keys=True, ensure_ascii=False, separators=(",", ":")) + "\n").encode()


def write_json(path: Path, data: Any) -> None:
    """`data` as indented JSON, atomically (a reader never sees half of it)."""
    with atomic_writer(path) as file:
        file.write(json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def read_sidecar(result: Path) -> dict[str, Any] | None:
    """The JSON sidecar of a result file, or None when it is missing or unreadable."""
    return read_json(sidecar_path(result))


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON object from a file, or None when it is missing, unreadable or not an object."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def move_with_sidecar(run_dir: Path, source: str, destination: str) -> bool:
    """Move a result (and its sidecar, if any) from one path inside `run_dir` to another; never
    overwrites (the destination must be free). Returns False when there was no file to move."""
    src = ensure_inside(run_dir, source)
    dst = ensure_inside(run_dir, destination)
    try:
        if not src.is_file() or src.is_symlink():
            return False
        if dst.exists() or dst.is_symlink():
            raise StorageError(f"cannot move {source} to {destination}: something is already there")
        dst.parent.mkdir(parents=True, exist_ok=True)
        os.replace(src, dst)
        src_sidecar, dst_sidecar = sidecar_path(src), sidecar_path(dst)
        if src_sidecar.is_file() and not src_sidecar.is_symlink() and not dst_sidecar.exists():
            os.replace(src_sidecar, dst_sidecar)
        fsync_directory(dst.parent)
        fsync_directory(src.parent)
    except OSError as exc:
        raise StorageError(f"cannot move {source} to {destination}: {exc.strerror or exc}") from exc
    return True


def set_aside_unowned(run_dir: Path, output_path: str) -> str | None:
    """Move a file found at a result's path that no journaled job owns (edited by hand, or left by a
    crash) to `superseded/replaced-<UTC time>/`, so writing the result there destroys nothing.
    Returns where it went (None: nothing was there)."""
    return _move_aside(run_dir, result_relpath(output_path), f"{SUPERSEDED_DIR}/replaced", output_path)
