"""argon2id password hashing (PyNaCl), off the event loop behind a small limiter.

One INTERACTIVE hash costs ~100 ms and 64 MiB; a handful inline would stall
every connection, so hashing runs in worker threads, at most
`auth.hash_concurrency` at a time. At most `auth.hash_queue_limit` more wait
for a worker: past that a hash is refused at once with `Unavailable`, so a
flood of logins cannot queue without bound (nor make a real login wait behind it).
"""

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


class PasswordHasher:
    def __init__(self, cost: str = "interactive", concurrency: int = 2, queue_limit: int = 32):
        self.opslimit, self.memlimit = COSTS[cost]
        self._limiter = trio.CapacityLimiter(concurrency)
        self.queue_limit = queue_limit
        self.refused = 0

    async def _run(self, fn, *args):
        """`fn(*args)` in a worker thread, or Unavailable if too many are already waiting for one."""
        if self._limiter.statistics().tasks_waiting >= self.queue_limit:
            self.refused += 1
            raise Unavailable("the server is busy checking passwords; try again shortly")
        return await trio.to_thread.run_sync(fn, *args, limiter=self._limiter)

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
