"""A least-recently-used cache bounded by an estimate of the bytes its entries keep alive.

Counting entries is not enough when entries differ in size by a thousand times (a 40-byte
message and a 4 KB one, a two-person conversation's read marks and a 1,000-member group's).
Callers pass each entry's size; estimates should err high (Python objects cost several
times their encoded size).

Thread-safe (puts take a lock; gets need none): write functions in the store's writer thread
use some of these caches too.
"""

import threading
from collections import OrderedDict
from typing import Any

ENTRY_OVERHEAD = 200  # the key, the table slot, the size record: a few hundred bytes at most


class ByteLRU:
    __slots__ = ("max_bytes", "used", "_entries", "_lock")

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self.used = 0
        self._entries: OrderedDict[Any, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key, default=None):
        # Without the lock (it is on every hit of every page): each OrderedDict call is atomic, and
        # an entry evicted by another thread between the two is simply not moved.
        entry = self._entries.get(key)
        if entry is None:
            return default
        try:
            self._entries.move_to_end(key)
        except KeyError:
            pass
        return entry[0]

    def put(self, key, value, size: int) -> None:
        """Keep `value` under `key`, evicting the least recently used entries to stay in budget.
        An entry larger than the whole budget is not kept."""
        size += ENTRY_OVERHEAD
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.used -= old[1]
            if size > self.max_bytes:
                return
            entries = self._entries
            while self.used + size > self.max_bytes and entries:
                _, (_, freed) = entries.popitem(last=False)
                self.used -= freed
            entries[key] = (value, size)
            self.used += size

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.used = 0
