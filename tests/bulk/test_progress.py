"""The progress lines of a bulk load (lib/cks/bulk/progress.py), on a
clock the tests move."""

import io
import types

import pytest

from cks.bulk import progress


@pytest.fixture
def clock(monkeypatch):
    """The lines' clock, at 100 s; a test sets clock.now."""
    clock = types.SimpleNamespace(now=100.0)
    monkeypatch.setattr(progress, "time", types.SimpleNamespace(monotonic=lambda: clock.now))
    return clock


def shown(clock, line_type, *arguments, updates, closed=False):
    """What a line of `line_type` (made with `arguments`) wrote, given the
    `updates` (clock time, update's arguments), and then closed."""
    out = io.StringIO()
    line = line_type(*arguments, stream=out)
    for at, update in updates:
        clock.now = at
        line.update(*update)
    if closed:
        line.close()
    return out.getvalue()


def states(written):
    """The states a line showed, last one last (each rewrites the one before)."""
    return [text.rstrip() for text in written.split("\r") if text.strip()]


def test_the_input_read_gives_the_time_left_from_the_first_line(clock):
    written = shown(clock, progress.ProgressLine, 1000, updates=[(101.0, (100, 250))])
    # 250 bytes a second: 750 more in 3 s
    assert states(written) == ["100 keys, 100 keys/s, 25.0% of the input, about 0m03s left"]


def test_a_resumed_load_counts_only_what_it_reads(clock):
    """Half the input was read by a load interrupted before."""
    written = shown(clock, progress.ProgressLine, 1000, 500,
                    updates=[(101.0, (10, 500)), (102.0, (50, 750))])
    # nothing read yet: no time left to tell; then 125 bytes a second: 250 more in 2 s
    assert states(written) == ["10 keys, 10 keys/s, 50.0% of the input",
                               "50 keys, 25 keys/s, 75.0% of the input, about 0m02s left"]


def test_the_last_state_is_shown_when_the_line_ends(clock):
    """However soon after the one shown before it came."""
    written = shown(clock, progress.ProgressLine, 1000,
                    updates=[(101.0, (100, 250)), (101.1, (300, 1000))], closed=True)
    assert states(written) == ["100 keys, 100 keys/s, 25.0% of the input, about 0m03s left",
                               "300 keys, 273 keys/s, 100.0% of the input, about 0m00s left"]
    assert written.endswith("\n")


def test_the_served_views_line_ends_with_its_last_state(clock):
    """Also when fewer keys than counted at the start were served (others
    served or deleted them meanwhile)."""
    written = shown(clock, progress.ViewsProgressLine, 10,
                    updates=[(101.0, (4, 100)), (101.2, (9, 240))], closed=True)
    assert states(written) == [
        "served views: 4 of 10 keys, 100 signatures/s, about 0m01s left",
        "served views: 9 of 10 keys, 200 signatures/s, about 0m00s left"]


def test_read_from_standard_input_the_line_tells_no_share_and_no_time_left(clock):
    """The input's size is not known then."""
    written = shown(clock, progress.ProgressLine, None, updates=[(102.0, (100, 250))])
    assert states(written) == ["100 keys, 50 keys/s"]


def test_a_problem_line_goes_above_the_line_which_is_shown_again(clock):
    """A load says a problem when it finds it: on a line of its own, the
    progress line cleared first and shown again after it, in its last
    state (one not shown yet too)."""
    out = io.StringIO()
    line = progress.ProgressLine(1000, stream=out)
    clock.now = 101.0
    line.update(100, 250)
    clock.now = 101.1
    line.update(200, 500)  # within the interval: not shown yet
    line.above(lambda: out.write("keys.gpg: offset 7: truncated packet\n"))
    line.close()
    assert out.getvalue() == (
        "\r100 keys, 100 keys/s, 25.0% of the input, about 0m03s left   "
        "\r\033[Kkeys.gpg: offset 7: truncated packet\n"
        "\r200 keys, 182 keys/s, 50.0% of the input, about 0m01s left   \n")
