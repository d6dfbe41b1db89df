"""What a generation costs, and the account balance it is charged to. Money is Decimal throughout."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from batchgen.emulator.catalog import ModelSpec

DEFAULT_DURATION = 5

if TYPE_CHECKING:
    from batchgen.emulator.config import EmulatorConfig
    from batchgen.emulator.model import Generation


def usd(value: float | int | str | Decimal) -> Decimal:
    return value if isinstance(value, Decimal) else Decimal(str(value))


def money_text(amount: Decimal) -> str:
    """Decimal as a plain string, e.g. ``"1.12"``; how the history API renders ``cost``."""
    return format(amount.quantize(Decimal("0.000001")).normalize(), "f")


def _as_int(value: Any, default: int) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return default


def video_seconds(body: Mapping[str, Any]) -> int:
    """Total output seconds: the sum of the shots, else ``duration``, else 5."""
    shots = body.get("multi_prompt")
    if isinstance(shots, list) and shots:
        durations = (s.get("duration") if isinstance(s, dict) else None for s in shots)
        return sum(_as_int(value, DEFAULT_DURATION) for value in durations)
    return _as_int(body.get("duration"), DEFAULT_DURATION)


def estimate(spec: ModelSpec, body: Mapping[str, Any]) -> Decimal:
    """The price of one generation of ``body``, per the model's pricing object."""
    pricing = spec.pricing
    method = pricing.get("method")
    if method == "per_image":
        return usd(pricing.get("cost_per_image") or 0)
    if method != "per_video_output_second":
        return Decimal(0)
    rate = pricing.get("cost_per_second") or 0
    if body.get("generate_audio") is True and pricing.get("cost_per_second_with_audio"):
        rate = pricing["cost_per_second_with_audio"]
    if body.get("resolution") == "4k" and pricing.get("cost_per_second_high_res"):
        rate = pricing["cost_per_second_high_res"]
    return usd(rate) * video_seconds(body)


class Ledger:
    """The account balance. ``None`` credits means unlimited."""

    def __init__(self, credits_usd: float | None) -> None:
        self._balance = None if credits_usd is None else usd(credits_usd)
        self.spent = Decimal(0)

    @property
    def balance(self) -> Decimal | None:
        return self._balance

    def effective_balance(self, exhaust_after: float | None) -> Decimal | None:
        """The balance, capped to zero once ``exhaust_after`` USD were spent (a fault knob)."""
        if exhaust_after is None:
            return self._balance
        left = max(Decimal(0), usd(exhaust_after) - self.spent)
        return left if self._balance is None else min(left, self._balance)

    def can_cover(self, amount: Decimal, committed: Decimal, exhaust_after: float | None) -> bool:
        balance = self.effective_balance(exhaust_after)
        return balance is None or balance - committed >= amount

    def charge(self, amount: Decimal) -> None:
        self.spent += amount
        if self._balance is not None:
            self._balance -= amount

    def add(self, amount: Decimal) -> None:
        if amount < 0:
            raise ValueError(f"add_credits: usd must be >= 0, got {amount}")
        if self._balance is not None:
            self._balance += amount


def result_size(config: EmulatorConfig, gen: Generation) -> int:
    """The bytes a result is padded to: `result_size_bytes`, or a video's duration at
    `result_bytes_per_second` when that is larger (real videos grow with their length)."""
    by_duration = 0
    if config.result_bytes_per_second and gen.media_type == "video":
        by_duration = video_seconds(gen.request) * config.result_bytes_per_second
    return max(config.result_size_bytes, by_duration)
