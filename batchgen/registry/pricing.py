"""Cost quotes: what one request will cost, from the model's `pricing` object (pure, Decimal)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

__all__ = ["MIN_UNIT_PRICE_USD", "format_usd", "implausible_prices", "quote", "quoted_options", "rate"]

#: The lowest price per second or per image a budget is enforced with (the documented ones are $0.012
#: and up): a registry answering 0, or 1e-12, would let every job through a budget "enforced" at $0.00.
MIN_UNIT_PRICE_USD = Decimal("0.0001")


def rate(value: Any) -> Decimal | None:
    """A price field as a Decimal (numbers or numeric strings), or None when absent or unusable."""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None
    try:
        result = Decimal(str(value))
    except InvalidOperation:
        return None
    return result if result.is_finite() and result >= 0 else None


def quote(
    pricing: Mapping[str, Any] | None, request: Mapping[str, Any], duration_s: int | None
) -> Decimal | None:
    """The list-price cost of `request`, or None when the pricing method is unknown or incomplete.

    `per_video_output_second`: `cost_per_second` (or `cost_per_second_with_audio` when the request
    sets `generate_audio: true` and that price exists) x `duration_s`; a request for a resolution
    above 1080p takes `cost_per_second_high_res` when that is higher. `per_image`: `cost_per_image`.
    """
    if not pricing:
        return None
    method = pricing.get("method")
    if method == "per_video_output_second":
        if duration_s is None:
            return None
        audio, high = quoted_options(request)
        per_second = rate(pricing.get("cost_per_second"))
        if audio:
            per_second = rate(pricing.get("cost_per_second_with_audio")) or per_second
        high_res = rate(pricing.get("cost_per_second_high_res"))
        if high_res is not None and per_second is not None and high:
            per_second = max(per_second, high_res)
        return None if per_second is None else per_second * duration_s
    if method == "per_image":
        return rate(pricing.get("cost_per_image"))
    return None


def quoted_options(request: Mapping[str, Any]) -> tuple[bool, bool]:
    """What a quote reads of a request besides its seconds: (audio asked for, resolution above 1080p).
    A cache of quotes is keyed by it with the model and the seconds."""
    return request.get("generate_audio") is True, _above_1080p(request.get("resolution"))


def _above_1080p(resolution: Any) -> bool:
    """Whether a `resolution` asks for more than 1080p. Which resolutions the high-res price covers is
    not documented: a label this cannot read ("ultra") counts as high, so the budget is never
    enforced with too low a quote."""
    if not isinstance(resolution, str) or not resolution:
        return False
    label = resolution.strip().lower()
    if label.endswith("k") and label[:-1].isdigit():
        return int(label[:-1]) >= 2  # 2k, 4k, 8k
    if label.endswith("p") and label[:-1].isdigit():
        return int(label[:-1]) > 1080
    return label not in ("sd", "hd", "standard", "fullhd", "full_hd")


def format_usd(amount: Decimal | None) -> str:
    """$1,234.57 (rounded half up to cents, for display), or "unknown"."""
    if amount is None:
        return "unknown"
    return f"${amount.quantize(Decimal('0.01'), rounding=ROUND_HALF_UP):,}"


def implausible_prices(quotes: Iterable[tuple[str, Decimal | None, int | None]]) -> dict[str, str]:
    """Per model whose quotes rest on a price below MIN_UNIT_PRICE_USD, the lowest such price in words
    ("$0 per second"), from (model, quote, duration in seconds or None for a per-image quote)."""
    lowest: dict[str, tuple[Decimal, str]] = {}
    for model, cost, duration_s in quotes:
        if cost is None or duration_s == 0:
            continue
        unit, per = (cost / duration_s, "second") if duration_s else (cost, "image")
        if unit < MIN_UNIT_PRICE_USD and (model not in lowest or unit < lowest[model][0]):
            lowest[model] = (unit, per)
    return {model: f"${unit.normalize():f} per {per}" for model, (unit, per) in lowest.items()}
