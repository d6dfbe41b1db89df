"""Where a run's results are delivered (pure): an Oxen repository, a branch, and a directory in it.

The directory is a template over the manifest (`campaigns/{name}`): `{name}` is the manifest's name,
any other `{var}` one of its top-level `vars:`. It must come out as a plain relative path: no leading
`/`, no `.` or `..` segment, no empty segment, no backslash or control character.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DELIVER_PATH_DEFAULT",
    "DeliveryTarget",
    "parse_repo",
    "path_problem",
    "render_path",
    "template_variables",
]

DELIVER_PATH_DEFAULT = "{name}"

_FIELD = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|\{|\}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BAD_CHARACTERS = re.compile(r"[\\\x00-\x1f\x7f]")
_REPO_PART = re.compile(r"[^/\s@:]+")


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryTarget:
    """A repository directory that results go to. `path` is rendered and checked already."""

    namespace: str
    repo: str
    branch: str = "main"
    path: str
    create: bool = False  # create the repository (POST /api/repos) when it does not exist

    def describe(self) -> str:
        return f"{self.namespace}/{self.repo}@{self.branch}:{self.path}"

    def ledger_key(self, api_origin: str) -> str:
        """How the journal names this target: the API, the repository and the branch (a file's
        repository path carries the directory)."""
        return f"{api_origin}/{self.namespace}/{self.repo}@{self.branch}"

    def repo_path(self, local: str) -> str:
        """Where a file of the run directory (`videos/hero/16x9.mp4`) goes in the repository."""
        return f"{self.path}/{local}"

    @classmethod
    def from_manifest(cls, deliver: Mapping[str, Any], variables: Mapping[str, Any]) -> DeliveryTarget:
        """From a manifest's checked `deliver:` mapping (its defaults filled in)."""
        namespace, repo = parse_repo(str(deliver["repo"]))
        return cls(
            namespace=namespace,
            repo=repo,
            branch=str(deliver.get("branch", "main")),
            path=render_path(str(deliver.get("path", DELIVER_PATH_DEFAULT)), variables),
            create=deliver.get("create") is True,
        )

    @classmethod
    def parse(
        cls,
        text: str,
        variables: Mapping[str, Any],
        *,
        default_path: str = DELIVER_PATH_DEFAULT,
        create: bool = False,
    ) -> DeliveryTarget:
        """`NS/NAME[@BRANCH][:PATH]`, PATH being a template like the manifest's `deliver.path`.
        Raises ValueError saying what is wrong."""
        spec, colon, path = text.strip().partition(":")
        where, _, branch = spec.partition("@")
        if (colon and not path) or ("@" in spec and not branch):
            raise ValueError(f"a delivery target is NS/NAME[@BRANCH][:PATH], got {text!r}")
        namespace, repo = parse_repo(where)
        if branch and not _REPO_PART.fullmatch(branch):
            raise ValueError(f"the branch {branch!r} of {text!r} is not a branch name")
        chosen = path or default_path
        return cls(
            namespace=namespace,
            repo=repo,
            branch=branch or "main",
            path=render_path(chosen, variables),
            create=create,
        )


def parse_repo(text: str) -> tuple[str, str]:
    """`NS/NAME` as (namespace, name); raises ValueError."""
    namespace, slash, name = text.partition("/")
    if not slash or not _REPO_PART.fullmatch(namespace) or not _REPO_PART.fullmatch(name):
        raise ValueError(f"a repository is NAMESPACE/NAME (e.g. meadow/campaigns), got {text!r}")
    return namespace, name


def template_variables(name: str, variables: Mapping[str, Any]) -> dict[str, Any]:
    """What a delivery path may use: the manifest's top-level scalar `vars:`, and `{name}`."""
    scalars = {k: v for k, v in variables.items() if isinstance(v, str | int | float | bool)}
    return {**scalars, "name": name}


def render_path(template: str, variables: Mapping[str, Any]) -> str:
    """The template with its `{var}`s filled in, checked as a repository directory; raises ValueError."""
    pieces: list[str] = []
    position = 0
    for match in _FIELD.finditer(template):
        pieces.append(template[position : match.start()])
        position = match.end()
        token, field = match.group(0), match.group(1)
        if token in ("{{", "}}"):
            pieces.append(token[0])
        elif field is None or not _IDENTIFIER.fullmatch(field):
            raise ValueError(f"{template!r} is not a valid path template: use {{name}} or {{a_var}}")
        elif field not in variables:
            known = ", ".join(f"{{{k}}}" for k in sorted(variables))
            raise ValueError(f"{template!r} uses {{{field}}}, which is not defined (known: {known})")
        else:
            value = variables[field]
            pieces.append(("true" if value else "false") if isinstance(value, bool) else str(value))
    pieces.append(template[position:])
    path = "".join(pieces)
    problem = path_problem(path)
    if problem:
        shown = f"{template!r}" if path == template else f"{template!r} (which gives {path!r})"
        raise ValueError(f"the delivery path {shown} {problem}")
    return path


def path_problem(path: str) -> str | None:
    """Why `path` cannot be a directory inside a repository (None when it can)."""
    if not path:
        return "is empty"
    if path.startswith("/"):
        return "is absolute: write it relative to the repository's root"
    bad = _BAD_CHARACTERS.search(path)
    if bad:
        return f"contains {bad.group(0)!r}"
    for segment in path.split("/"):
        if not segment:
            return "has an empty segment"
        if segment in (".", ".."):
            return f"has a '{segment}' segment"
        if segment != segment.strip():
            return f"has a segment with spaces at its ends ({segment!r})"
    return None
