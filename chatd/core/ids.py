"""64-bit snowflake ids: milliseconds since EPOCH_MS ‖ worker (10 bits) ‖ sequence (12 bits).

Ids are strictly increasing within a process even when the wall clock steps
back: the generator never issues a timestamp lower than the last one it used,
and when a millisecond's 4096 sequence numbers run out it borrows the next
millisecond.
"""

import threading
import time

EPOCH_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z
WORKER_BITS = 10
SEQUENCE_BITS = 12
MAX_WORKER = (1 << WORKER_BITS) - 1
_SEQUENCE_MASK = (1 << SEQUENCE_BITS) - 1
_TIME_SHIFT = WORKER_BITS + SEQUENCE_BITS
MAX_ID = (1 << 63) - 1  # ids fit a signed 64-bit integer, as most clients' JSON parsers need
_MAX_KEY = (1 << 64) - 1


def timestamp_ms(snowflake: int) -> int:
    """The Unix time in milliseconds carried by a snowflake."""
    return (snowflake >> _TIME_SHIFT) + EPOCH_MS


def lowest_id_at(unix_ms: int) -> int:
    """The smallest snowflake that any generator could issue at `unix_ms` (for range scans);
    times past the ids' range (year 2163 and later) give the largest 64-bit key."""
    return min(max(0, unix_ms - EPOCH_MS) << _TIME_SHIFT, _MAX_KEY)


class Snowflakes:
    def __init__(self, worker: int = 0, clock=time.time_ns):
        if not 0 <= worker <= MAX_WORKER:
            raise ValueError(f"worker id must be 0..{MAX_WORKER}")
        self._worker = worker
        self._clock = clock
        self._last_ms = 0
        self._sequence = 0
        # Write functions running in the store's writer thread take ids too.
        self._lock = threading.Lock()

    def next(self) -> int:
        with self._lock:
            now = self._clock() // 1_000_000 - EPOCH_MS
            if now > self._last_ms:
                self._last_ms = now
                self._sequence = 0
            else:
                self._sequence = (self._sequence + 1) & _SEQUENCE_MASK
                if self._sequence == 0:
                    self._last_ms += 1
            return (self._last_ms << _TIME_SHIFT) | (self._worker << SEQUENCE_BITS) | self._sequence

    def observe(self, snowflake: int) -> None:
        """Never issue an id at or below `snowflake` (called at start-up with the highest stored id)."""
        ms = snowflake >> _TIME_SHIFT
        sequence = snowflake & _SEQUENCE_MASK
        with self._lock:
            if ms > self._last_ms or (ms == self._last_ms and sequence > self._sequence):
                self._last_ms = ms
                self._sequence = sequence
