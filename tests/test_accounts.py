"""Accounts, sessions and admin tokens (chatd/core/accounts.py, sessions.py, admin_tokens.py)
through a running server's core; the hash-only token storage checked on the data files."""

import hashlib
from pathlib import Path

import pytest
import trio

from chatd.core import admin_tokens
from chatd.core.errors import Conflict, Invalid, Unauthorized
from chatd.core.events import SessionsRevoked
from chatd.store import tables as T
from chatd.store.lmdb import Store
from tests.helpers import run_cli, write_config


async def test_duplicate_login_refused_case_insensitively(server):
    accounts = server.core.accounts
    alice = await accounts.create("Alice", password="pw")
    for login in ("alice", "ALICE", "  aLiCe "):
        with pytest.raises(Conflict) as e:
            await accounts.create(login, password="pw")
        assert e.value.details.get("field") == "login"
    assert accounts.by_login("ALICE").id == alice.id
    assert accounts.by_login("alice").login == "Alice"
    bob = await accounts.create("bob")
    with pytest.raises(Conflict):
        await accounts.update(bob.id, login="ALICE")
    # Renaming yourself to a different case of your own login is fine.
    assert (await accounts.update(alice.id, login="ALICE")).login == "ALICE"
    assert accounts.by_login("alice").id == alice.id


async def test_email_unique(server):
    accounts = server.core.accounts
    a = await accounts.create("a1", email="Someone@Example.org")
    with pytest.raises(Conflict) as e:
        await accounts.create("a2", email="someone@example.ORG")
    assert e.value.details.get("field") == "email"
    assert accounts.by_login("a2") is None  # nothing of the refused account was written
    b = await accounts.create("a3", email="other@example.org")
    with pytest.raises(Conflict):
        await accounts.update(b.id, email="SOMEONE@example.org")
    # Freeing an email makes it available again.
    await accounts.update(a.id, email="new@example.org")
    assert accounts.by_email("someone@example.org") is None
    await accounts.update(b.id, email="someone@example.org")
    assert accounts.by_email("Someone@Example.org").id == b.id


async def test_wrong_password_refused(server):
    accounts = server.core.accounts
    user = await accounts.create("carol", password="right horse")
    assert (await accounts.check_password("CAROL", "right horse")).id == user.id
    for login, pw in (("carol", "wrong"), ("nobody", "right horse"), ("carol", ""), ("carol", None)):
        with pytest.raises(Unauthorized):
            await accounts.check_password(login, pw)
    nopw = await accounts.create("nopw")
    with pytest.raises(Unauthorized):
        await accounts.check_password(nopw.login, "anything")


async def test_password_change_needs_current_password(server):
    accounts = server.core.accounts
    user = await accounts.create("dave", password="old")
    with pytest.raises(Invalid) as e:
        await accounts.update(user.id, new_password="new")
    assert e.value.field == "current_password"
    with pytest.raises(Unauthorized):
        await accounts.update(user.id, new_password="new", current_password="not-old")
    await accounts.check_password("dave", "old")  # unchanged
    await accounts.update(user.id, new_password="new", current_password="old")
    await accounts.check_password("dave", "new")
    with pytest.raises(Unauthorized):
        await accounts.check_password("dave", "old")
    await accounts.set_password(user.id, "admin-set")  # the CLI path, no current password
    await accounts.check_password("dave", "admin-set")


async def test_expired_token_refused(server):
    sessions = server.core.sessions
    user = await server.core.accounts.create("erin")
    issued = await sessions.create(user.id, "laptop", ttl=1)
    assert sessions.authenticate(issued.access_token).id == issued.session.id
    await trio.sleep(1.05)
    with pytest.raises(Unauthorized, match="expired"):
        sessions.authenticate(issued.access_token)


async def test_fractional_ttl_gives_a_readable_session(server):
    sessions = server.core.sessions
    user = await server.core.accounts.create("erin2")
    issued = await sessions.create(user.id, "laptop", ttl=0.5)
    sessions.authenticate(issued.access_token)


async def test_malformed_and_unknown_tokens_refused(server):
    sessions = server.core.sessions
    for token in (None, "", 42, "x" * 600, "no-such-token"):
        with pytest.raises(Unauthorized):
            sessions.authenticate(token)


async def test_revoked_tokens_refused(server):
    sessions = server.core.sessions
    user = await server.core.accounts.create("frank")
    one = await sessions.create(user.id, "phone")
    two = await sessions.create(user.id, "laptop")
    three = await sessions.create(user.id, "tablet")
    await sessions.revoke(one.session.id)
    with pytest.raises(Unauthorized):
        sessions.authenticate(one.access_token)
    with pytest.raises(Unauthorized):
        await sessions.refresh(one.refresh_token)
    assert sessions.authenticate(two.access_token).device_id == "laptop"
    sub = server.core.bus.subscribe(user.id)
    await sessions.revoke_all(user.id)
    for s in (two, three):
        with pytest.raises(Unauthorized):
            sessions.authenticate(s.access_token)
        with pytest.raises(Unauthorized):
            await sessions.refresh(s.refresh_token)
    assert sub.dropped == "logged out everywhere"
    with server.store.read() as txn:
        assert txn.count(T.useridsessionid_, prefix=T.useridsessionid_.prefix(user.id)) == 0


async def test_second_login_on_same_device_replaces_first(server):
    sessions = server.core.sessions
    user = await server.core.accounts.create("grace")
    sub = server.core.bus.subscribe(user.id)
    first = await sessions.create(user.id, "Phone-1")
    other = await sessions.create(user.id, "desktop")
    second = await sessions.create(user.id, "phone-1")  # device ids compare case-insensitively
    with pytest.raises(Unauthorized):
        sessions.authenticate(first.access_token)
    assert sessions.authenticate(second.access_token).id == second.session.id
    assert sessions.authenticate(other.access_token).id == other.session.id
    env = sub.receive_nowait()
    assert isinstance(env.event, SessionsRevoked) and env.event.session_ids == (first.session.id,)
    assert sessions.get(first.session.id) is None


async def test_refresh_token_rotation(server):
    sessions = server.core.sessions
    user = await server.core.accounts.create("heidi")
    first = await sessions.create(user.id, "phone", dialect="sama")
    second = await sessions.refresh(first.refresh_token)
    assert second.refresh_token != first.refresh_token and second.access_token != first.access_token
    assert second.session.device_id == "phone" and second.session.dialect == "sama"
    with pytest.raises(Unauthorized):
        await sessions.refresh(first.refresh_token)  # the old refresh token is spent
    with pytest.raises(Unauthorized):
        sessions.authenticate(first.access_token)  # and the old session ended
    assert sessions.authenticate(second.access_token).user_id == user.id
    with pytest.raises(Unauthorized):
        await sessions.refresh(second.refresh_token, device_id="another-device")
    third = await sessions.refresh(second.refresh_token, device_id="PHONE")
    assert sessions.authenticate(third.access_token).user_id == user.id
    no_refresh = await sessions.create(user.id, "bot", refresh=False)
    assert no_refresh.refresh_token is None
    for bad in (None, "", "nope"):
        with pytest.raises(Unauthorized):
            await sessions.refresh(bad)


async def test_session_for_deleted_user_refused(server):
    user = await server.core.accounts.create("ivan")
    await server.core.accounts.delete(user.id)
    with pytest.raises(Unauthorized):
        await server.core.sessions.create(user.id, "phone")


async def test_deleting_a_user_ends_their_sessions(server):
    user = await server.core.accounts.create("kim")
    issued = await server.core.sessions.create(user.id, "phone")
    await server.core.accounts.delete(user.id)
    with pytest.raises(Unauthorized):
        server.core.sessions.authenticate(issued.access_token)
    with pytest.raises(Unauthorized):
        await server.core.sessions.refresh(issued.refresh_token)
    assert server.core.accounts.by_login("kim") is None
    await server.core.accounts.create("KIM")  # the login is free again


async def test_refresh_token_spent_once_under_concurrency(server):
    sessions = server.core.sessions
    user = await server.core.accounts.create("leo")
    first = await sessions.create(user.id, "phone")
    results = []

    async def refresh():
        try:
            results.append(await sessions.refresh(first.refresh_token))
        except Unauthorized as e:
            results.append(e)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(refresh)
        nursery.start_soon(refresh)
    assert sum(isinstance(r, Unauthorized) for r in results) == 1


def _all_bytes(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(Path(directory).rglob("*")) if p.is_file())


async def test_tokens_stored_only_as_hashes(tmp_path, config):
    from chatd.server import Server

    srv = Server(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(srv.run)
        user = await srv.core.accounts.create("judy", password="Correct-Horse-7731")
        issued = [await srv.core.sessions.create(user.id, f"device-{i}") for i in range(3)]
        rotated = await srv.core.sessions.refresh(issued[0].refresh_token)
        issued.append(rotated)
        srv.stop()
    # The server is closed: every byte it wrote is in the files.
    data = _all_bytes(config.data_dir)
    assert data
    for s in issued[1:]:
        for token in (s.access_token, s.refresh_token):
            assert token.encode() not in data
            assert hashlib.sha256(token.encode()).digest() in data
    for token in (issued[0].access_token, issued[0].refresh_token):
        assert token.encode() not in data
    assert b"Correct-Horse-7731" not in data  # the password too is only a hash


def test_admin_token_cli(tmp_path):
    path = write_config(tmp_path)
    r = run_cli("admin", "create-token", "--name", "ops", "--config", path)
    assert r.returncode == 0, r.stderr
    token = r.stdout.strip()
    assert len(r.stdout.splitlines()) == 1 and token.startswith("adm_") and len(token) > 40
    assert "only its hash" in r.stderr
    data = _all_bytes(tmp_path / "data")
    assert token.encode() not in data
    assert hashlib.sha256(token.encode()).digest() in data
    store = Store(tmp_path / "data")
    try:
        record = admin_tokens.authenticate(store, token)
        assert record.name == "ops"
        for bad in (None, "", token[:-1] + ("A" if token[-1] != "A" else "B"), token[4:], "adm_x"):
            with pytest.raises(Unauthorized):
                admin_tokens.authenticate(store, bad)
    finally:
        store.close()
    second = run_cli("admin", "create-token", "--config", path).stdout.strip()
    assert second != token


async def test_login_by_id_needs_the_password_of_an_account_that_has_one(server):
    accounts = server.core.accounts
    with_pw = await accounts.create("haspw", password="pw")
    without = await accounts.create("nopw2")
    for password in (None, "", "wrong"):
        with pytest.raises(Unauthorized):
            await accounts.login_by_id(with_pw.id, "haspw", password, allow_passwordless=True)
    assert (await accounts.login_by_id(with_pw.id, "HASPW", "pw", allow_passwordless=True)).id == with_pw.id
    assert (await accounts.login_by_id(without.id, "nopw2", None, allow_passwordless=True)).id == without.id
    with pytest.raises(Unauthorized):  # the dialect requires passwords
        await accounts.login_by_id(without.id, "nopw2", None, allow_passwordless=False)
    with pytest.raises(Unauthorized):  # id and login of different users
        await accounts.login_by_id(without.id, "haspw", "pw", allow_passwordless=True)


async def test_password_change_revokes_the_other_sessions(server):
    core = server.core
    user = await core.accounts.create("changer", password="old")
    keep = await core.sessions.create(user.id, "d1")
    other = await core.sessions.create(user.id, "d2")
    with core.bus.subscribe(user.id) as sub:
        await core.accounts.update(user.id, new_password="new", current_password="old",
                                   keep_session=keep.session.id)
        with trio.fail_after(2):
            event = (await sub.receive()).event
    assert event == SessionsRevoked(user_id=user.id, session_ids=(other.session.id,), reason="password changed")
    assert core.sessions.authenticate(keep.access_token).id == keep.session.id
    with pytest.raises(Unauthorized):
        core.sessions.authenticate(other.access_token)
    with pytest.raises(Unauthorized):
        await core.sessions.refresh(other.refresh_token)


async def test_access_token_expiry_is_announced(server):
    core = server.core
    user = await core.accounts.create("expiring")
    core.sessions.access_ttl_ms = 300
    with core.bus.subscribe(user.id) as sub:
        issued = await core.sessions.create(user.id, "d1")
        with trio.fail_after(3):
            event = (await sub.receive()).event
    assert event == SessionsRevoked(user_id=user.id, session_ids=(issued.session.id,), reason="expired")
    # The session stays for its refresh token.
    assert (await core.sessions.refresh(issued.refresh_token)).session.user_id == user.id
