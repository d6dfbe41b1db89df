"""Where a run's results are delivered (pure): an Oxen repository, a branch, and a directory in it.

This module is the one place that says whether a name is one Oxen takes and a URL carries unchanged
(the manifest's checks, `--deliver` and `--upload-repo` all ask it):

- a namespace or repository name (`name_problem`, `repo_problem` for `NS/NAME`): Oxen's own rule,
  2 or more ASCII letters, digits, `_`, `.` or `-`, starting with a letter or digit. So never `.` or
  `..`, which a URL resolves away (the request would go to another endpoint).
- a branch (`branch_problem`): `/`-separated parts (`review/client-a`), with git's rules where they
  apply: no part empty, `.` or `..`, starting with `-` or ending with `.lock` or `.`; no whitespace,
  control or format character, nor any of `@ : \\ % + ? # ~ ^ [ *`.
- a delivery directory (`path_problem`): the template (`campaigns/{name}`, over `{name}` and the
  manifest's top-level `vars:`) must come out as a plain relative path: no leading `/`, no `.`, `..`
  or empty segment, no backslash, no `%` or `+` (the server keeps `%2F`, `%2B` and `%25` encoded, so
  `..%2f..%2fx` is not the directory it looks like), no control or format character (U+202E...).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = [
    "BRANCH_PATTERN",
    "CLIENT",
    "DELIVER_PATH_DEFAULT",
    "IDENTIFIER",
    "NAME_PATTERN",
    "REPO_PATTERN",
    "TEMPLATE_TOKEN",
    "DeliveryTarget",
    "branch_problem",
    "name_problem",
    "parse_branch",
    "parse_repo",
    "path_problem",
    "render_path",
    "repo_problem",
    "template_pieces",
    "template_variables",
]

DELIVER_PATH_DEFAULT = "{name}"
CLIENT = "client"  # `deliver: {for: client}`, `deliver --for client`: what a client may see, nothing else

_NAME_RULE = "Oxen names are 2 or more letters, digits, '_', '.' or '-', starting with a letter or digit"
_BRANCH_EXAMPLE = "branch names look like main or review/client-a"

# The manifest schema's patterns (editors show them); the functions below are the full rules (the
# schema cannot name Unicode format characters), and the manifest checks report what they refuse.
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]+$"
REPO_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]+/[A-Za-z0-9][A-Za-z0-9_.-]+$"
_BRANCH_CHAR = r"[^\s@:\\%+?#~^\[*/\x00-\x1f\x7f-\x9f]"
_BRANCH_LAST = r"[^\s@:\\%+?#~^\[*/\x00-\x1f\x7f-\x9f.]"
_BRANCH_PART = rf"(?!-)(?!{_BRANCH_CHAR}*\.lock(?:/|$)){_BRANCH_CHAR}*{_BRANCH_LAST}"
BRANCH_PATTERN = rf"^(?:{_BRANCH_PART}/)*{_BRANCH_PART}$"

#: The `{var}` syntax's tokens: `{{`, `}}`, a field (group 1), a lone brace. In this leaf because manifest's
#: checks render delivery paths and manifest sits below planning, whose templates parser uses it too.
TEMPLATE_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|\{|\}")
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]+")
_NAME_CHARACTER = re.compile(r"[A-Za-z0-9_.-]")
_INVISIBLE = frozenset({"Cc", "Cf", "Zl", "Zp"})  # control, format (bidi overrides, zero width), separators
_BRANCH_FORBIDDEN = frozenset("@:\\%+?#~^[*")
_DOT = "a dot segment that a URL resolves away (requests would go to another endpoint)"
_PERCENT = (
    "a percent-escape such as '..%2f..%2fx' is not decoded into the path it looks like "
    "(the server keeps '%2F', '%2B' and '%25' as they are)"
)
_NOT_CARRIED = "which does not survive a URL (the server keeps '%25', '%2F' and '%2B' encoded)"


@dataclass(frozen=True, slots=True, kw_only=True)
class DeliveryTarget:
    """A repository directory that results go to. `path` is rendered and checked already."""

    namespace: str
    repo: str
    branch: str = "main"
    path: str
    create: bool = False  # create the repository (POST /api/repos) when it does not exist
    audience: str = "team"  # "client": the client-safe delivery (`deliver: {for: client}`)

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
            branch=parse_branch(str(deliver.get("branch", "main"))),
            path=render_path(str(deliver.get("path", DELIVER_PATH_DEFAULT)), variables),
            create=deliver.get("create") is True,
            audience=CLIENT if deliver.get("for") == CLIENT else "team",
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
        """`NS/NAME[@BRANCH][:PATH]`, PATH being a template like the manifest's `deliver.path`; BRANCH
        may hold '/' (`review/client-a`). The first ':' starts PATH and the first '@' BRANCH (neither
        may appear in a name or a branch). Raises ValueError saying everything that is wrong."""
        spec, colon, path = text.strip().partition(":")
        where, at, branch = spec.partition("@")
        if (colon and not path) or (at and not branch):
            raise ValueError(f"a delivery target is NS/NAME[@BRANCH][:PATH], got {text!r}")
        wrong: list[str] = []  # every part is checked: one message says all that is wrong
        problem = repo_problem(where)
        if problem:
            wrong.append(f"the repository {where!r} {problem}")
        problem = branch_problem(branch) if at else None
        if problem:
            wrong.append(f"the branch {branch!r} {problem}")
        try:
            rendered = render_path(path or default_path, variables)
        except ValueError as exc:
            wrong.append(str(exc))
        if wrong:
            raise ValueError("; also, ".join(wrong))
        namespace, _, repo = where.partition("/")
        return cls(namespace=namespace, repo=repo, branch=branch or "main", path=rendered, create=create)


def parse_repo(text: str) -> tuple[str, str]:
    """`NS/NAME` as (namespace, name), each a name Oxen takes; raises ValueError saying why not."""
    problem = repo_problem(text)
    if problem:
        raise ValueError(f"the repository {text!r} {problem}")
    namespace, _, name = text.partition("/")
    return namespace, name


def parse_branch(text: str) -> str:
    """`text` if it is a branch name (`main`, `review/client-a`); raises ValueError saying why not."""
    problem = branch_problem(text)
    if problem:
        raise ValueError(f"the branch {text!r} {problem}")
    return text


def repo_problem(text: str) -> str | None:
    """Why `text` is not `NAMESPACE/NAME` of names Oxen takes (None when it is). The reason reads
    after the value: "'a/..' has the repository name '..', which ..."."""
    namespace, slash, name = text.partition("/")
    if not slash or not namespace or not name or "/" in name:
        return "is not NAMESPACE/NAME (e.g. meadow/campaigns)"
    for what, part in (("namespace", namespace), ("repository name", name)):
        problem = name_problem(part)
        if problem:
            return f"has the {what} {part!r}, which {problem}"
    return None


def name_problem(name: str) -> str | None:
    """Why `name` cannot be an Oxen namespace or repository name (None when it can), with the rule."""
    if _NAME.fullmatch(name):
        return None
    if name in (".", ".."):
        reason = f"is {_DOT}"
    elif not name:
        reason = "is empty"
    elif bad := next((c for c in name if not _NAME_CHARACTER.fullmatch(c)), None):
        reason = f"contains {_shown(bad)}"
    elif len(name) < 2:
        reason = "is 1 character"
    else:
        reason = f"starts with {name[0]!r}"
    return f"{reason}: {_NAME_RULE}"


def branch_problem(branch: str) -> str | None:
    """Why `branch` cannot be a branch name (None when it can), with the rule."""
    reason = _branch_reason(branch)
    return None if reason is None else f"{reason}; {_BRANCH_EXAMPLE}"


def _branch_reason(branch: str) -> str | None:
    if not branch:
        return "is empty"
    for c in branch:
        if c.isspace() or unicodedata.category(c) in _INVISIBLE:
            return f"contains {_shown(c)}"
        if c in "%+":
            return f"contains {c!r}, {_NOT_CARRIED}"
        if c in _BRANCH_FORBIDDEN:
            return f"contains {c!r}"
    if branch.startswith("/") or branch.endswith("/"):
        return "starts or ends with '/'"
    return next(filter(None, map(_branch_part_reason, branch.split("/"))), None)


def _branch_part_reason(part: str) -> str | None:
    """What is wrong with one '/'-separated part of a branch name (git's rules, where they apply)."""
    if not part:
        return "has an empty part ('//')"
    if part in (".", ".."):
        return f"has a {part!r} part: {_DOT}"
    if part.startswith("-"):
        return f"has a part starting with '-' ({part!r})"
    if part.endswith(".lock"):
        return f"has a part ending with '.lock' ({part!r})"
    if part.endswith("."):
        return f"has a part ending with '.' ({part!r})"
    return None


def _shown(character: str) -> str:
    """A character as a message shows it: visible ones quoted, others by code point and name."""
    if character.isspace() or unicodedata.category(character) in _INVISIBLE:
        name = unicodedata.name(character, "")
        return f"U+{ord(character):04X}" + (f" ({name})" if name else " (a control character)")
    return repr(character)


def template_variables(name: str, variables: Mapping[str, Any]) -> dict[str, Any]:
    """What a delivery path may use: the manifest's top-level scalar `vars:`, and `{name}`."""
    scalars = {k: v for k, v in variables.items() if isinstance(v, str | int | float | bool)}
    return {**scalars, "name": name}


def template_pieces(text: str) -> Iterator[str | re.Match[str]]:
    """`text` in order: literal text (`{{`, `}}` as one brace; runs joined, never empty) and the
    TEMPLATE_TOKEN match of each `{field}` (its group 1) or lone brace (group 1 None)."""
    literal, position = "", 0
    for match in TEMPLATE_TOKEN.finditer(text):
        literal += text[position : match.start()]
        position = match.end()
        if match.group(0) in ("{{", "}}"):
            literal += match.group(0)[0]
            continue
        if literal:
            yield literal
        literal = ""
        yield match
    literal += text[position:]
    if literal:
        yield literal


def render_path(template: str, variables: Mapping[str, Any]) -> str:
    """The template with its `{var}`s filled in, checked as a repository directory; raises ValueError."""
    pieces: list[str] = []
    for piece in template_pieces(template):
        if isinstance(piece, str):
            pieces.append(piece)
            continue
        field = piece.group(1)
        if field is None or not IDENTIFIER.fullmatch(field):
            raise ValueError(f"{template!r} is not a valid path template: use {{name}} or {{a_var}}")
        elif field not in variables:
            known = ", ".join(f"{{{k}}}" for k in sorted(variables))
            raise ValueError(f"{template!r} uses {{{field}}}, which is not defined (known: {known})")
        else:
            value = variables[field]
            pieces.append(("true" if value else "false") if isinstance(value, bool) else str(value))
    path = "".join(pieces)
    problem = path_problem(path)
    if problem:
        shown = f"{template!r}" if path == template else f"{template!r} (which gives {path!r})"
        raise ValueError(f"the delivery path {shown} {problem}")
    return path


def path_problem(path: str) -> str | None:
    """Why `path` cannot be a directory inside a repository (None when it can). The reason reads
    after the path: "'a/../b' has a '..' segment"."""
    if not path:
        return "is empty"
    if path.startswith("/"):
        return "is absolute: write it relative to the repository's root"
    for c in path:
        if c == "\\":
            return "contains '\\\\': separate directories with '/'"
        if unicodedata.category(c) in _INVISIBLE:
            return f"contains {_shown(c)}: a path may not hold control or format characters"
        if c == "%":
            return f"contains '%': {_PERCENT}"
        if c == "+":
            return f"contains '+', {_NOT_CARRIED}"
    for segment in path.split("/"):
        if not segment:
            return "has an empty segment"
        if segment in (".", ".."):
            return f"has a '{segment}' segment"
        if segment != segment.strip():
            return f"has a segment with spaces at its ends ({segment!r})"
    return None
