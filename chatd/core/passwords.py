"""argon2id password hashing (PyNaCl), off the event loop behind a small limiter.

One INTERACTIVE hash costs ~100 ms and 64 MiB; a handful inline would stall
every connection, so hashing runs in worker threads, at most
`auth.hash_concurrency` at a time. A hash that would wait longer than
`auth.hash_wait_limit` seconds for a worker (the hashes ahead of it times their
measured cost) is refused at once with `Unavailable`, so a flood of logins cannot
queue without bound nor make a real login wait behind it — whatever the argon2 cost.
"""

import time

import nacl.exceptions
import nacl.pwhash.argon2id as argon2id
import trio

from .errors import Unavailable

COSTS = {
    "min": (argon2id.OPSLIMIT_MIN, argon2id.MEMLIMIT_MIN),
    "interactive": (argon2id.OPSLIMIT_INTERACTIVE, argon2id.MEMLIMIT_INTERACTIVE),
    "moderate": (argon2id.OPSLIMIT_MODERATE, argon2id.MEMLIMIT_MODERATE),
    "sensitive": (argon2id.OPSLIMIT_SENSITIVE, argon2id.MEMLIMIT_SENSITIVE),
}
# Seconds one hash takes, until measured (this machine class).
FIRST_GUESS_S = {"min": 0.002, "interactive": 0.1, "moderate": 0.5, "sensitive": 2.5}


class PasswordHasher:
    def __init__(self, cost: str = "interactive", concurrency: int = 2, wait_limit: float = 5.0):
        self.opslimit, self.memlimit = COSTS[cost]
        self._limiter = trio.CapacityLimiter(concurrency)
        self.wait_limit = wait_limit
        self.mean_s = FIRST_GUESS_S[cost]  # moving average of one hash's time
        self.refused = 0

    def expected_wait(self) -> float:
        """Seconds a hash asked for now would wait for a worker."""
        limiter = self._limiter
        return limiter.statistics().tasks_waiting * self.mean_s / limiter.total_tokens

    async def _run(self, fn, *args):
        """`fn(*args)` in a worker thread, or Unavailable if it would wait past `wait_limit`."""
        if self.expected_wait() > self.wait_limit:
            self.refused += 1
            raise Unavailable("the server is busy checking passwords; try again shortly")

        def timed():
            started = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.mean_s += 0.2 * (time.perf_counter() - started - self.mean_s)

        return await trio.to_thread.run_sync(timed, limiter=self._limiter)

    def hash_sync(self, password: str) -> bytes:
        return argon2id.str(password.encode("utf-8"), opslimit=self.opslimit, memlimit=self.memlimit)

    @staticmethod
    def verify_sync(stored: bytes, password: str) -> bool:
        try:
            return argon2id.verify(stored, password.encode("utf-8"))
        except (nacl.exceptions.InvalidkeyError, nacl.exceptions.CryptoError, ValueError):
            return False

    async def hash(self, password: str) -> bytes:
        return await self._run(self.hash_sync, password)

    async def verify(self, stored: bytes | None, password: str) -> bool:
        if not stored:
            # Spend the same time as a real check so a missing account is not revealed by timing.
            await self._run(self.hash_sync, password)
            return False
        return await self._run(self.verify_sync, stored, password)
