"""The stop-signal rule of `batchgen run`: which press drains, which is the same press, which stops."""

import pytest

from batchgen.cli.signals import SAME_PRESS_S, Press, Presses


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ((0.0,), [Press.DRAIN]),
        ((0.0, 0.005), [Press.DRAIN, Press.SAME]),  # `timeout -s INT`, a process group's Ctrl-C
        ((0.0, 0.005, 0.3), [Press.DRAIN, Press.SAME, Press.SAME]),  # counted from the first, not the last
        ((0.0, SAME_PRESS_S), [Press.DRAIN, Press.STOP]),
        ((10.0, 10.2, 11.0), [Press.DRAIN, Press.SAME, Press.STOP]),
    ],
)
def test_a_repeat_within_half_a_second_of_the_first_is_the_same_press(
    times: tuple[float, ...], expected: list[Press]
) -> None:
    """A signal within SAME_PRESS_S of the first press (counted from the first, not the last) is the same
    press; a later one stops."""
    presses = Presses()
    assert [presses.press(t) for t in times] == expected
