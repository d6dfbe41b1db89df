"""Cost quotes from a model's pricing object."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from batchgen.registry.pricing import format_usd, quote, rate

PER_SECOND = {"method": "per_video_output_second", "cost_per_second": 0.224}


@pytest.mark.parametrize(
    ("pricing", "request_", "seconds", "expected"),
    [
        (PER_SECOND, {}, 5, Decimal("1.120")),
        (PER_SECOND, {}, 15, Decimal("3.360")),
        (PER_SECOND, {"generate_audio": True}, 5, Decimal("1.120")),  # no audio price: same rate
        ({**PER_SECOND, "cost_per_second_with_audio": 0.3}, {"generate_audio": True}, 10, Decimal("3.0")),
        ({**PER_SECOND, "cost_per_second_with_audio": 0.3}, {"generate_audio": False}, 10, Decimal("2.240")),
        # the high-res price for a resolution above 1080p (an unknown label too), never lowering a rate
        ({**PER_SECOND, "cost_per_second_high_res": 0.448}, {"resolution": "4k"}, 5, Decimal("2.240")),
        ({**PER_SECOND, "cost_per_second_high_res": 0.448}, {"resolution": "1440p"}, 5, Decimal("2.240")),
        ({**PER_SECOND, "cost_per_second_high_res": 0.448}, {"resolution": "ultra"}, 5, Decimal("2.240")),
        ({**PER_SECOND, "cost_per_second_high_res": 0.448}, {"resolution": "1080p"}, 5, Decimal("1.120")),
        ({**PER_SECOND, "cost_per_second_high_res": 0.448}, {"resolution": "720p"}, 5, Decimal("1.120")),
        ({**PER_SECOND, "cost_per_second_high_res": 0.448}, {}, 5, Decimal("1.120")),
        ({**PER_SECOND, "cost_per_second_high_res": 0.1}, {"resolution": "4k"}, 5, Decimal("1.120")),
        (PER_SECOND, {"resolution": "4k"}, 5, Decimal("1.120")),  # no high-res price: the one rate
        (PER_SECOND, {}, None, None),
        ({"method": "per_video_output_second"}, {}, 5, None),
        ({"method": "per_image", "cost_per_image": "0.04"}, {}, None, Decimal("0.04")),
        ({"method": "per_image"}, {}, None, None),
        ({"method": "token", "input_cost_per_token": 1}, {}, 5, None),
        (None, {}, 5, None),
        ({}, {}, 5, None),
    ],
)
def test_quote(
    pricing: dict[str, Any] | None, request_: dict[str, Any], seconds: int | None, expected: Decimal | None
) -> None:
    """per_video_output_second x seconds (audio rate when asked for and known, high-res rate above
    1080p when known and higher), per_image, else None."""
    assert quote(pricing, request_, seconds) == expected


def test_rate_accepts_numbers_and_numeric_strings_only() -> None:
    """Prices are exact Decimals from ints, floats (via their repr) and numeric strings."""
    assert rate(0.224) == Decimal("0.224") and rate("1.5") == Decimal("1.5") and rate(2) == Decimal(2)
    assert rate(True) is None and rate("free") is None and rate(-1) is None and rate(None) is None
    assert rate(float("nan")) is None and rate([1]) is None


def test_format_usd() -> None:
    """Amounts print as dollars rounded to cents, with thousands separators."""
    assert format_usd(Decimal("1234.565")) == "$1,234.57" and format_usd(Decimal(0)) == "$0.00"
    assert format_usd(None) == "unknown"
