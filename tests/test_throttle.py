"""The failed-login throttle (chatd/core/throttle.py) and the bounded hashing queue (core/passwords.py)."""

import pytest
import trio

from chatd.core.errors import RateLimited, Unavailable
from chatd.core.passwords import PasswordHasher
from chatd.core.throttle import LoginThrottle, address_key


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def throttle(**kw) -> tuple[LoginThrottle, Clock]:
    clock = Clock()
    return LoginThrottle(**{"per_account": 3, "per_address": 5, "window": 60, **kw}, clock=clock), clock


def test_account_budget_then_refused_until_the_window_ends():
    t, clock = throttle()
    for _ in range(3):
        t.attempt("alice", "10.0.0.1")  # each counted as a failure
    with pytest.raises(RateLimited) as e:
        t.attempt("alice", "10.0.0.2")  # from anywhere
    assert 0 < e.value.retry_after <= 60
    t.attempt("bob", "10.0.0.2")  # other accounts are not affected
    clock.now += 60
    t.attempt("alice", "10.0.0.2")


def test_address_budget_covers_every_account():
    t, _ = throttle(per_account=100)
    for i in range(5):
        t.attempt(f"user{i}", "10.0.0.1")
    with pytest.raises(RateLimited):
        t.attempt("someone-else", "10.0.0.1")
    t.attempt("someone-else", "10.0.0.2")


def test_success_and_withdrawn_attempts_do_not_count():
    t, _ = throttle()
    for _ in range(10):
        t.attempt("alice", "10.0.0.1")
        t.succeeded("alice", "10.0.0.1")
    for _ in range(10):
        t.attempt("alice", "10.0.0.2")
        t.withdraw("alice", "10.0.0.2")
    for _ in range(3):
        t.attempt("alice", "10.0.0.3")
    with pytest.raises(RateLimited):
        t.attempt("alice", "10.0.0.3")


def test_an_address_that_logged_in_before_is_not_locked_out_by_others():
    """Lockout as a denial of service: a stranger spending alice's budget does not stop alice
    logging in from where she did before; her own failures there have a budget of their own."""
    t, _ = throttle()
    t.attempt("alice", "192.0.2.7")
    t.succeeded("alice", "192.0.2.7")
    for _ in range(3):
        t.attempt("alice", "203.0.113.9")
    with pytest.raises(RateLimited):
        t.attempt("alice", "198.51.100.1")  # a new address waits
    t.attempt("alice", "192.0.2.7")  # her usual address does not
    t.succeeded("alice", "192.0.2.7")
    for _ in range(3):
        t.attempt("alice", "192.0.2.7")
    with pytest.raises(RateLimited):
        t.attempt("alice", "192.0.2.7")


def test_refused_attempts_do_not_extend_the_lockout():
    t, clock = throttle()
    for _ in range(3):
        t.attempt("alice", None)
    for _ in range(10):
        clock.now += 5
        with pytest.raises(RateLimited):
            t.attempt("alice", None)
    clock.now += 10
    t.attempt("alice", None)


def test_counters_are_bounded():
    t, clock = throttle(per_account=1, per_address=1000, max_entries=100)
    for i in range(1000):
        t.attempt(f"user{i}", None)
        clock.now += 0.001
    assert len(t._accounts._items) <= 100


def test_address_key_groups_ipv6_per_64():
    assert address_key("192.0.2.7") == "192.0.2.7"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert address_key("::ffff:192.0.2.7") == "192.0.2.7"
    assert address_key(None) is None and address_key("") is None
    assert address_key("not-an-ip") == "not-an-ip"


async def test_hashing_queue_is_bounded_by_the_expected_wait():
    """A hash that would wait past `wait_limit` (hashes ahead × their cost) is refused at once."""
    hasher = PasswordHasher("min", concurrency=1, wait_limit=1.5)
    hasher.mean_s = 1.0  # two waiting: an expected wait of 2 s
    release = trio.Event()
    entered = []

    def slow_hash(password):
        entered.append(password)
        trio.from_thread.run_sync(lambda: None)  # still cancellable from the loop
        while not release.is_set():
            trio.from_thread.run(trio.sleep, 0.01)
        return b"hash"

    hasher.hash_sync = slow_hash
    results = []

    async def run(pw):
        results.append(await hasher.hash(pw))

    async with trio.open_nursery() as nursery:
        for pw in ("a", "b", "c"):  # one running, two waiting
            nursery.start_soon(run, pw)
        with trio.fail_after(5):
            while not entered:
                await trio.sleep(0.01)
        await trio.sleep(0.05)
        assert hasher.expected_wait() == 2.0
        with pytest.raises(Unavailable):
            await hasher.hash("d")
        assert hasher.refused == 1
        release.set()
    assert results == [b"hash"] * 3


async def test_a_burst_of_cheap_hashes_waits_instead_of_being_refused():
    """The bound is time, not a count: 200 sign-ups at once are fine when each hash is cheap."""
    hasher = PasswordHasher("min", concurrency=2, wait_limit=5.0)
    async with trio.open_nursery() as nursery:
        for i in range(200):
            nursery.start_soon(hasher.hash, f"pw{i}")
    assert hasher.refused == 0 and hasher.mean_s < 0.1
