"""Snowflake ids (chatd/core/ids.py): unique, strictly increasing, clock-step safe."""

import pytest

from chatd.core import ids
from chatd.core.ids import EPOCH_MS, Snowflakes, lowest_id_at, timestamp_ms


class FakeClock:
    """A settable time.time_ns replacement (milliseconds in, nanoseconds out)."""

    def __init__(self, ms: int):
        self.ms = ms

    def __call__(self) -> int:
        return self.ms * 1_000_000


T0 = EPOCH_MS + 1_000_000_000  # some day in 2024


def test_unique_and_increasing_across_100k():
    gen = Snowflakes(3)
    out = [gen.next() for _ in range(100_000)]
    assert all(a < b for a, b in zip(out, out[1:], strict=False))
    assert len(set(out)) == len(out)
    assert all((i >> 12) & 0x3FF == 3 for i in out[:1000])


def test_increasing_when_clock_steps_back():
    clock = FakeClock(T0)
    gen = Snowflakes(1, clock=clock)
    before = [gen.next() for _ in range(10)]
    clock.ms -= 60_000  # NTP stepped the clock back a minute
    after = [gen.next() for _ in range(10)]
    clock.ms += 30_000  # still behind the last issued timestamp
    later = [gen.next() for _ in range(10)]
    seq = before + after + later
    assert all(a < b for a, b in zip(seq, seq[1:], strict=False))
    # Ids issued while the clock is behind keep the last good timestamp.
    assert timestamp_ms(after[-1]) == T0
    clock.ms = T0 + 5
    assert timestamp_ms(gen.next()) == T0 + 5


def test_sequence_overflow_within_one_millisecond_borrows_the_next():
    clock = FakeClock(T0)
    gen = Snowflakes(0, clock=clock)
    out = [gen.next() for _ in range(4096 * 2 + 10)]  # the clock never moves
    assert all(a < b for a, b in zip(out, out[1:], strict=False))
    assert timestamp_ms(out[4095]) == T0
    assert timestamp_ms(out[4096]) == T0 + 1
    assert timestamp_ms(out[-1]) == T0 + 2
    assert out[4096] & 0xFFF == 0
    # When the real clock catches up past the borrowed millisecond, ids stay increasing.
    clock.ms = T0 + 1
    nxt = gen.next()
    assert nxt > out[-1]
    clock.ms = T0 + 10
    assert gen.next() > nxt


def test_observe_a_later_id_from_storage():
    clock = FakeClock(T0)
    stored = Snowflakes(0, clock=FakeClock(T0 + 5_000))
    highest = max(stored.next() for _ in range(50))
    gen = Snowflakes(0, clock=clock)
    gen.observe(highest)  # start-up with a clock behind what is stored
    nxt = gen.next()
    assert nxt > highest
    gen.observe(highest - 1000)  # an older id changes nothing
    assert gen.next() > nxt


def test_observe_an_id_in_the_same_millisecond():
    clock = FakeClock(T0)
    gen = Snowflakes(0, clock=clock)
    gen.next()  # sequence 0 at T0
    other = Snowflakes(0, clock=clock)
    seen = [other.next() for _ in range(10)][-1]  # sequence 9 at T0 (e.g. read back from storage)
    gen.observe(seen)
    assert gen.next() > seen


def test_timestamp_round_trip():
    for ms in (EPOCH_MS, T0, T0 + 123_456, EPOCH_MS + (1 << 41) - 1):
        gen = Snowflakes(1023, clock=FakeClock(ms))
        sf = gen.next()
        assert timestamp_ms(sf) == ms
        assert sf.bit_length() <= 64 - 1 or ms - EPOCH_MS >= 1 << 41
        assert lowest_id_at(ms) <= sf < lowest_id_at(ms + 1)
    assert lowest_id_at(EPOCH_MS - 10) == 0
    assert (T0 - EPOCH_MS) << 22 == lowest_id_at(T0)


def test_worker_range():
    with pytest.raises(ValueError):
        Snowflakes(ids.MAX_WORKER + 1)
    with pytest.raises(ValueError):
        Snowflakes(-1)
