"""Config validation: bad knobs are refused with a message naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from batchgen.emulator import EmulatorConfig, FaultConfig, LatencyConfig


@pytest.mark.parametrize(
    ("cls", "field", "value"),
    [
        (EmulatorConfig, "time_scale", -1),
        (EmulatorConfig, "time_scale", float("nan")),
        (EmulatorConfig, "port", 70_000),
        (EmulatorConfig, "api_key", ""),
        (EmulatorConfig, "username", " padded "),
        (EmulatorConfig, "keepalive_seconds", 0),
        (EmulatorConfig, "url_ttl_seconds", -5),
        (EmulatorConfig, "account_concurrency", 0),
        (EmulatorConfig, "credits_usd", -1.0),
        (EmulatorConfig, "result_size_bytes", -1),
        (EmulatorConfig, "unrelated_event_every", 1.5),
        (EmulatorConfig, "public_base_url", "127.0.0.1:8765"),
        (EmulatorConfig, "seed", True),
        (EmulatorConfig, "faults", {}),
        (LatencyConfig, "latency_sigma", 5),
        (LatencyConfig, "queue_wait_median_seconds", -1),
        (LatencyConfig, "render_seconds_pattern", "render [0-9]+s"),
        (LatencyConfig, "render_seconds_pattern", "render ([0-9]+s"),
        (FaultConfig, "rate_limit_rate", 1.5),
        (FaultConfig, "generation_failure_rate", "0.1"),
        (FaultConfig, "server_error_status", 404),
        (FaultConfig, "sse_cut_after_events", 0),
        (FaultConfig, "sse_cut_once_after_events", 0),
        (FaultConfig, "sse_cut_every_seconds", 0),
        (FaultConfig, "download_bytes_per_second", -10),
        (FaultConfig, "server_error_routes", ["POST /api/ai/queue"]),
        (FaultConfig, "rate_limit_routes", ("queue",)),
        (FaultConfig, "slow_response_routes", ("file",)),
        (FaultConfig, "upload_cut_rate", 2),
        (FaultConfig, "upload_error_after_commit_rate", -0.1),
        (FaultConfig, "upload_fault_routes", ("workspaces",)),
        (EmulatorConfig, "put_file_memory_limit_bytes", -1),
        (EmulatorConfig, "max_request_bytes", 1.5),
        (EmulatorConfig, "serve_version_uploads", "yes"),
    ],
)
def test_invalid_values_name_the_field(cls: type, field: str, value: Any) -> None:
    """Each bad value raises ValueError mentioning 'Class.field'."""
    with pytest.raises(ValueError, match=rf"{cls.__name__}\.{field} must be"):
        cls(**{field: value})


def test_burst_longer_than_period_is_refused() -> None:
    """A 429 storm cannot be longer than the period between storms."""
    with pytest.raises(ValueError, match="rate_limit_burst_seconds"):
        FaultConfig(rate_limit_burst_seconds=5, rate_limit_burst_period_seconds=2)


def test_defaults() -> None:
    """Documented defaults: loopback, emulator-key, 15 s keep-alive, concurrency 8, faults off."""
    config = EmulatorConfig()
    assert (config.host, config.port, config.api_key) == ("127.0.0.1", 0, "emulator-key")
    assert (config.keepalive_seconds, config.account_concurrency, config.credits_usd) == (15.0, 8, None)
    assert config.unrelated_event_every == 7
    assert config.faults == FaultConfig()
    assert FaultConfig().generation_failure_rate == 0.0
    assert (config.put_file_memory_limit_bytes, config.max_request_bytes) == (2 * 1024 * 1024, None)
    assert (config.serve_version_uploads, config.faults.upload_fault_routes) == (True, ())


def test_configs_are_frozen() -> None:
    """Configs are immutable; runtime changes go through Emulator.set_faults."""
    config = EmulatorConfig()
    with pytest.raises(AttributeError):
        config.time_scale = 2  # type: ignore[misc]
