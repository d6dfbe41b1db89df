"""The public surface: what `import batchgen` offers is deliberate and complete."""

import batchgen


def test_all_is_sorted_and_every_name_exists() -> None:
    """__all__ is kept sorted, and each name in it is importable from the package."""
    assert batchgen.__all__ == sorted(batchgen.__all__)
    for name in batchgen.__all__:
        assert hasattr(batchgen, name), name


def test_every_public_attribute_is_listed() -> None:
    """Nothing public leaks in by accident: every non-module, non-underscore name is in __all__."""
    import types

    names = [n for n in dir(batchgen) if not n.startswith("_")]  # dir(): the names load on first use
    public = {n for n in names if not isinstance(getattr(batchgen, n), types.ModuleType)}
    assert public == set(batchgen.__all__) - {"__version__"}
