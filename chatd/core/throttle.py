"""Failed-login throttling: budgets per account and per client address, checked before any hash.

Every password check is an *attempt*, counted as a failure from the moment it
starts (so concurrent guesses cannot all slip under the budget) and taken back
if it succeeds. Once a budget is spent, further attempts are refused with
`RateLimited` until the window that began with the first failure ends, without
computing a hash: argon2 cannot be used as an amplifier.

Lockout as a denial of service: anyone can spend an account's budget by
guessing. An address that has logged in to the account successfully before
(remembered in memory, `KNOWN_TTL`) is therefore exempt from the account-wide
and address-wide budgets; its own failures on that account are limited by a
budget of the same size for that (account, address) pair. So a user keeps
logging in from where they usually do while someone else hammers their
account; a login from a new address waits for the window to end. Addresses
are grouped per host (IPv4) or per /64 (IPv6).
"""

import ipaddress
import time
from collections.abc import Callable

from .errors import RateLimited

KNOWN_TTL = 30 * 86400.0
KNOWN_PER_ACCOUNT = 16


def address_key(remote: str | None) -> str | None:
    """The throttling key of a client address: the IPv4 address, or the IPv6 /64 it belongs to."""
    if not remote:
        return None
    try:
        ip = ipaddress.ip_address(remote.strip("[]"))
    except ValueError:
        return remote
    if ip.version == 6:
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def account_key(login: str) -> str:
    return login.strip().casefold()


class _Counters:
    """Failure counts in fixed windows that start at a key's first failure; bounded in size."""

    __slots__ = ("window", "max_entries", "_items")

    def __init__(self, window: float, max_entries: int):
        self.window = window
        self.max_entries = max_entries
        self._items: dict = {}  # key → [window start, count]

    def retry_after(self, key, budget: int, now: float) -> float:
        """Seconds until `key` may try again (0: it may now)."""
        item = self._items.get(key)
        if item is None or now - item[0] >= self.window or item[1] < budget:
            return 0.0
        return item[0] + self.window - now

    def add(self, key, now: float, n: int = 1) -> None:
        item = self._items.get(key)
        if item is None or now - item[0] >= self.window:
            if n < 0:
                return
            if item is None and len(self._items) >= self.max_entries:
                self._prune(now)
            self._items[key] = [now, n]
        else:
            item[1] = max(0, item[1] + n)

    def _prune(self, now: float) -> None:
        for key in [k for k, (start, _) in self._items.items() if now - start >= self.window]:
            del self._items[key]
        # Still full of live windows: forget the oldest (dicts keep insertion order).
        excess = len(self._items) - self.max_entries * 9 // 10
        for key in list(self._items)[:max(0, excess)]:
            del self._items[key]


class LoginThrottle:
    def __init__(self, *, per_account: int, per_address: int, window: float, max_entries: int = 100_000,
                 clock: Callable[[], float] = time.monotonic):
        self.per_account = per_account
        self.per_address = per_address
        self.clock = clock
        self._accounts = _Counters(window, max_entries)
        self._addresses = _Counters(window, max_entries)
        self._pairs = _Counters(window, max_entries)
        self._known: dict[str, dict[str, float]] = {}  # account → {address: last successful login}
        self.max_entries = max_entries
        self.refused = 0

    def _is_known(self, account: str, address: str | None, now: float) -> bool:
        seen = self._known.get(account, {}).get(address) if address is not None else None
        return seen is not None and now - seen < KNOWN_TTL

    def attempt(self, account: str, address: str | None) -> None:
        """Count one password attempt as a failure, or RateLimited (not counted) when over budget."""
        now = self.clock()
        if self._is_known(account, address, now):
            checks = [(self._pairs, (account, address), self.per_account, "for this account")]
        else:
            checks = [(self._accounts, account, self.per_account, "for this account")]
            if address is not None:
                checks.append((self._addresses, address, self.per_address, "from this address"))
        for counters, key, budget, what in checks:
            wait = counters.retry_after(key, budget, now)
            if wait > 0:
                self.refused += 1
                raise RateLimited(f"too many failed logins {what}; try again later", retry_after=wait)
        self._count(account, address, now, 1)

    def withdraw(self, account: str, address: str | None) -> None:
        """Take back an attempt that checked no password (the hasher was busy, or the client left)."""
        self._count(account, address, self.clock(), -1)

    def succeeded(self, account: str, address: str | None) -> None:
        """Take back the attempt's failure and remember the address as one this account logs in from."""
        now = self.clock()
        self._count(account, address, now, -1)
        if address is None:
            return
        known = self._known.pop(account, {})  # re-inserted last: the dict's order is least recent first
        known.pop(address, None)
        known[address] = now
        while len(known) > KNOWN_PER_ACCOUNT:
            del known[next(iter(known))]
        self._known[account] = known
        if len(self._known) > self.max_entries:
            del self._known[next(iter(self._known))]

    def _count(self, account: str, address: str | None, now: float, n: int) -> None:
        self._accounts.add(account, now, n)
        if address is not None:
            self._addresses.add(address, now, n)
            self._pairs.add((account, address), now, n)
