"""Strict `{var}` templates: parsing (cached) and the reference syntax for assets.

Syntax, inside any string of a manifest:

- `{name}`         the value of variable `name` (letters, digits, `_`; not starting with a digit)
- `{asset:NAME}`   the URL of the asset called NAME (a literal asset name)
- `{asset:$name}`  the URL of the asset whose name is the value of variable `name`
- `{{` and `}}`    a literal `{` or `}`

Anything else between braces, or a lone brace, is a syntax error. The one parser (its tokens walked by
`target.template_pieces`, as delivery paths and report titles are); rendering lives in `compiler.py`
and `paths.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

from batchgen.manifest.model import is_identifier
from batchgen.target import template_pieces

__all__ = [
    "AssetRef",
    "Template",
    "TemplateSyntaxError",
    "Var",
    "parse_template",
]

_ASSET_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_FIELD_HELP = "expected {name}, {asset:NAME} or {asset:$name}; write {{ or }} for a literal brace"


@dataclass(frozen=True, slots=True)
class Var:
    """`{name}`: a variable reference."""

    name: str


@dataclass(frozen=True, slots=True)
class AssetRef:
    """`{asset:NAME}` (via_var False) or `{asset:$name}` (via_var True; `name` is the variable)."""

    name: str
    via_var: bool


Part = str | Var | AssetRef


class TemplateSyntaxError(ValueError):
    """A string is not a valid template; `message` says why and what was expected."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class Template:
    """A parsed template: literal text (escapes already undone) and fields, in order."""

    source: str
    parts: tuple[Part, ...]

    @property
    def is_constant(self) -> bool:
        """True when the template has no fields (its value is `text`)."""
        return all(isinstance(p, str) for p in self.parts)

    @property
    def text(self) -> str:
        """The literal value of a constant template."""
        return "".join(p for p in self.parts if isinstance(p, str))

    @property
    def single(self) -> Var | AssetRef | None:
        """The field, when the whole string is exactly one field (typed substitution applies)."""
        if len(self.parts) == 1 and not isinstance(self.parts[0], str):
            return self.parts[0]
        return None

    def var_names(self) -> tuple[str, ...]:
        """Every variable the template reads, including `{asset:$name}` indirections, in order."""
        return tuple(
            p.name for p in self.parts if isinstance(p, Var) or (isinstance(p, AssetRef) and p.via_var)
        )


def _parse_field(inner: str) -> Var | AssetRef:
    if is_identifier(inner):
        return Var(inner)
    if inner.startswith("asset:"):
        ref = inner[len("asset:") :]
        if ref.startswith("$") and is_identifier(ref[1:]):
            return AssetRef(ref[1:], via_var=True)
        if _ASSET_NAME.fullmatch(ref):
            return AssetRef(ref, via_var=False)
        raise TemplateSyntaxError(f"invalid asset reference '{{{inner}}}': {_FIELD_HELP}")
    if not inner:
        raise TemplateSyntaxError(f"empty field '{{}}': {_FIELD_HELP}")
    raise TemplateSyntaxError(f"invalid field '{{{inner}}}': {_FIELD_HELP}")


@lru_cache(maxsize=16384)
def parse_template(text: str) -> Template:
    """Parse `text`; raise TemplateSyntaxError on a lone brace or a malformed field."""
    if "{" not in text and "}" not in text:
        return Template(text, (text,) if text else ())
    parts: list[Part] = []
    for piece in template_pieces(text):
        if isinstance(piece, str):
            parts.append(piece)
        elif piece.group(0) == "{":
            raise TemplateSyntaxError(f"unclosed '{{' at character {piece.start() + 1}: {_FIELD_HELP}")
        elif piece.group(0) == "}":
            raise TemplateSyntaxError(f"single '}}' at character {piece.start() + 1}: {_FIELD_HELP}")
        else:
            parts.append(_parse_field(piece.group(1)))
    return Template(text, tuple(parts))
