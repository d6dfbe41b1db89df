"""Template parsing: fields, asset references, escapes and syntax errors."""

from __future__ import annotations

import pytest

from batchgen.manifest import is_identifier
from batchgen.planning.templates import AssetRef, TemplateSyntaxError, Var, parse_template


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("plain", ("plain",)),
        ("", ()),
        ("{a}", (Var("a"),)),
        ("x {a} y {b_2}", ("x ", Var("a"), " y ", Var("b_2"))),
        ("{{literal}} {a}", ("{literal} ", Var("a"))),
        ("}}{{", ("}{",)),
        ("{asset:mug}", (AssetRef("mug", via_var=False),)),
        ("{asset:logo-v2.png}", (AssetRef("logo-v2.png", via_var=False),)),
        ("{asset:$product}", (AssetRef("product", via_var=True),)),
        ("see {asset:$p}!", ("see ", AssetRef("p", via_var=True), "!")),
    ],
)
def test_parse_splits_literals_and_fields(text: str, parts: tuple[object, ...]) -> None:
    """Literal text (escapes undone) and fields come out in order."""
    assert parse_template(text).parts == parts


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a { b", "unclosed '{' at character 3"),
        ("a } b", "single '}' at character 3"),
        ("{}", "empty field '{}'"),
        ("{a.b}", "invalid field '{a.b}'"),
        ("{n:>4}", "invalid field '{n:>4}'"),
        ("{0}", "invalid field '{0}'"),
        ("{asset:}", "invalid asset reference '{asset:}'"),
        ("{asset:$1x}", "invalid asset reference '{asset:$1x}'"),
        ("{a{b}", "unclosed '{' at character 1"),
    ],
)
def test_parse_rejects_malformed_templates(text: str, message: str) -> None:
    """A lone brace or a field that is not {name}/{asset:...} is a syntax error saying which."""
    with pytest.raises(TemplateSyntaxError) as caught:
        parse_template(text)
    assert caught.value.message.startswith(message)
    assert "{{" in caught.value.message  # the error tells how to write a literal brace


def test_single_field_and_constant_flags() -> None:
    """`single` is set only when the whole string is one field; `is_constant` when there is none."""
    assert parse_template("{d}").single == Var("d")
    assert parse_template(" {d}").single is None
    assert parse_template("{{d}}").is_constant
    assert parse_template("{{d}}").text == "{d}"
    assert not parse_template("{d}").is_constant


def test_var_names_include_asset_indirections_only() -> None:
    """`var_names` lists {name} and {asset:$name} variables, not literal asset names."""
    assert parse_template("{a} {asset:$b} {asset:c} {a}").var_names() == ("a", "b", "a")


def test_identifiers() -> None:
    """Variable names are letters, digits and underscores, not starting with a digit."""
    assert is_identifier("_x1") and is_identifier("Product")
    assert not is_identifier("1x") and not is_identifier("my var") and not is_identifier("a-b")
