"""The ideal schedule of benchmarks/ideal.py (the makespan row's yardstick): plan order on a fixed
number of slots, with the pauses a 429 storm forces, exactly as the emulator answers them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from batchgen.emulator import FaultConfig
from batchgen.emulator.counters import Counters
from batchgen.emulator.faults import FaultInjector


def _load() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "ideal.py"
    spec = importlib.util.spec_from_file_location("bench_ideal", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is made
    spec.loader.exec_module(module)
    return module


ideal = _load()
Storm = ideal.Storm


def test_jobs_fill_the_earliest_free_slot_in_plan_order() -> None:
    """Two slots: each job takes whichever slot frees first, in plan order (not longest first)."""
    schedule = ideal.ideal_schedule([5, 3, 1, 4], slots=2)
    assert schedule == [(0, 5), (0, 3), (3, 4), (4, 8)]
    assert ideal.ideal_makespan([5, 3, 1, 4], slots=2) == 8


def test_one_slot_adds_up_and_many_slots_take_the_longest() -> None:
    """One slot: the sum of the renders; more slots than jobs: the longest render."""
    renders = [2.5, 1.0, 4.0]
    assert ideal.ideal_makespan(renders, slots=1) == 7.5
    assert ideal.ideal_makespan(renders, slots=20) == 4.0
    assert ideal.ideal_makespan([], slots=3) == 0.0


def test_a_start_inside_a_storm_waits_its_retry_after() -> None:
    """A slot freeing at 3 s in a storm from 2 s to 5.5 s gets Retry-After ceil(2.5) = 3: it starts
    at 6 s, not at the storm's end; a start before the storm is not touched."""
    storms = [Storm(2.0, 5.5)]
    schedule = ideal.ideal_schedule([3, 1, 2], slots=1, storms=storms)
    assert schedule == [(0, 3), (6, 7), (7, 9)]


def test_retry_after_is_at_least_one_second() -> None:
    """At the storm's last instant the wait is still 1 s, as a Retry-After header says in whole seconds."""
    storm = Storm(0.0, 10.0)
    assert storm.retry_after(9.9) == 1
    assert storm.retry_after(10.0) is None
    assert storm.retry_after(-0.1) is None
    assert ideal.earliest_start(9.9, [storm]) == pytest.approx(10.9)


def test_storms_in_a_row_are_each_waited_out() -> None:
    """A retry that lands in the next storm waits again."""
    storms = [Storm(0.0, 2.0), Storm(2.5, 4.0)]
    assert ideal.earliest_start(0.5, storms) == pytest.approx(4.5)  # 0.5 -> 2.5 (storm 2) -> 4.5


def test_the_retry_after_matches_the_emulator_storm() -> None:
    """The ideal's Retry-After at each moment of a storm is the one the emulator sends then."""
    now = [50.0]
    injector = FaultInjector(
        FaultConfig(rate_limit_burst_seconds=5.0), 0, Counters(), monotonic=lambda: now[0]
    )
    storm = Storm(0.0, 5.0)
    for offset in (0.0, 0.4, 1.0, 2.7, 4.99, 5.0, 7.0):
        now[0] = 50.0 + offset
        assert injector.retry_after_for("POST /api/ai/queue") == storm.retry_after(offset), offset


def test_jobs_to_fill_a_duration() -> None:
    """The fewest leading jobs whose ideal makespan reaches the duration; all when none do."""
    renders = [4.0] * 10
    assert ideal.jobs_to_fill(renders, slots=2, seconds=8.0) == 3  # 4, 4 on two slots, then a third
    assert ideal.ideal_makespan(renders[:3], slots=2) >= 8.0 > ideal.ideal_makespan(renders[:2], slots=2)
    assert ideal.jobs_to_fill(renders, slots=2, seconds=1_000.0) == 10


def test_bad_input_is_refused() -> None:
    """No slots, or a negative render time, is a mistake in the benchmark, not a schedule."""
    with pytest.raises(ValueError, match="slots"):
        ideal.ideal_schedule([1.0], slots=0)
    with pytest.raises(ValueError, match="negative"):
        ideal.ideal_schedule([1.0, -1.0], slots=1)
