"""A token bucket per session: `rate` requests per second with bursts up to `burst`."""

import time

from .errors import RateLimited


class TokenBucket:
    __slots__ = ("rate", "burst", "_tokens", "_stamp")

    def __init__(self, rate: float, burst: int):
        self.rate = rate
        self.burst = burst
        self._tokens = float(burst)
        self._stamp = time.monotonic()

    def take(self, cost: float = 1.0) -> None:
        now = time.monotonic()
        self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens < cost:
            raise RateLimited("too many requests", retry_after=(cost - self._tokens) / self.rate)
        self._tokens -= cost
