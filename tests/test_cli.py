"""The `chatd` command line: admin create-user, backup while a server runs and writes, restore,
and one-line errors (exit 2) for data-directory and start-up problems."""

import json
import signal
import subprocess
import sys

import cbor2
import pytest
import trio

from chatd.core.models import User
from chatd.store import keys
from chatd.store.lmdb import Store
from chatd.store.tables import FORMAT_VERSION
from tests.helpers import REPO, free_port, run_cli, start_subprocess_server, write_config
from tests.helpers.burst_writer import check_record


async def acli(*args, check_rc: int | None = 0) -> subprocess.CompletedProcess:
    r = await trio.run_process(
        [sys.executable, "-m", "chatd", *map(str, args)], capture_stdout=True, capture_stderr=True,
        check=False, cwd=str(REPO),
    )
    r.stdout, r.stderr = r.stdout.decode(), r.stderr.decode()
    if check_rc is not None:
        assert r.returncode == check_rc, (args, r.stdout, r.stderr)
    return r


def test_admin_create_user(tmp_path):
    path = write_config(tmp_path)
    r = run_cli("admin", "create-user", "Alice", "--password", "pw1", "--config", path)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["login"] == "Alice" and int(out["id"]) > 0
    # The password from stdin when not given (not a tty).
    r = run_cli("admin", "create-user", "bob", "--config", path, input="pw2\n")
    assert r.returncode == 0, r.stderr
    store = Store(tmp_path / "data")
    try:
        with store.read() as txn:
            uid = keys.read_u64(txn.get_raw("username_userid", b"alice"))
            user = txn.get("userid_user", keys.u64(uid), User)
            assert user.login == "Alice" and user.password_hash.startswith(b"$argon2id$")
            assert txn.exists("username_userid", b"bob")
    finally:
        store.close()


@pytest.mark.deadline(45)
async def test_backup_while_running_and_writing_then_restore(tmp_path, nursery):
    live = tmp_path / "live"
    live.mkdir()
    async with await start_subprocess_server(live) as srv:
        for name in ("alice", "bob", "carol"):
            await acli("admin", "create-user", name, "--password", "pw", "--config", srv.config_path)
        writer = await trio.lowlevel.open_process(
            [sys.executable, "-m", "tests.helpers.burst_writer", str(srv.data_dir), "--tasks", "8"],
            stdout=subprocess.PIPE, cwd=str(REPO),
        )
        try:
            first = await writer.stdout.receive_some(4096)  # the writer is committing
            assert first
            backup = tmp_path / "backup"
            r = await acli("backup", "--config", srv.config_path, backup)
            assert "backup written" in r.stdout
            more = await writer.stdout.receive_some(4096)
            assert more, "the writer kept writing during the backup"
        finally:
            writer.kill()
            await writer.wait()
        assert srv.proc.returncode is None, "the server kept running"
        # A second backup into a non-empty directory is refused.
        r = await acli("backup", "--config", srv.config_path, backup, check_rc=2)
        assert "not empty" in r.stderr and len(r.stderr.splitlines()) == 1
        # Restoring over the data of a running server is refused (it holds the data lock).
        r = await acli("restore", "--config", srv.config_path, backup, "--force", check_rc=2)
        assert "in use" in r.stderr

    assert json.loads((backup / "chatd-backup.json").read_text())["version"]
    copy = Store(backup)
    try:
        with copy.read() as txn:
            assert txn.get("meta", b"format_version") == FORMAT_VERSION
            logins = sorted(txn.get("userid_user", raw_id, User).login
                            for _, raw_id in txn.scan_raw("username_userid"))
            assert logins == ["alice", "bob", "carol"]
            burst = list(txn.scan_raw("meta", prefix=b"burst:"))
            assert burst, "the backup holds the writes committed before it"
            assert all(check_record(cbor2.loads(raw)) for _, raw in burst)
    finally:
        copy.close()

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    config_path = write_config(fresh)
    r = await acli("restore", "--config", config_path, backup)
    assert "restored" in r.stdout
    r = await acli("restore", "--config", config_path, backup, check_rc=2)
    assert "--force" in r.stderr and len(r.stderr.splitlines()) == 1
    await acli("restore", "--config", config_path, backup, "--force")
    r = await acli("restore", "--config", config_path, tmp_path / "nothing", check_rc=2)
    assert "not a chatd backup" in r.stderr

    from chatd.config import load
    from chatd.server import Server

    server = Server(load(config_path))
    await nursery.start(server.run)
    try:
        user = server.core.accounts.by_login("Bob")
        assert user is not None and user.login == "bob"
        assert (await server.core.accounts.check_password("carol", "pw")).login == "carol"
        newer = await server.core.accounts.create("dave")
        assert newer.id > user.id  # ids continue after the restored ones
    finally:
        server.stop()


def test_admin_create_user_taken_login_is_one_line(tmp_path):
    path = write_config(tmp_path)
    assert run_cli("admin", "create-user", "Alice", "--password", "x", "--config", path).returncode == 0
    r = run_cli("admin", "create-user", "ALICE", "--password", "x", "--config", path)
    assert r.returncode == 1 and "taken" in r.stderr
    assert len(r.stderr.splitlines()) == 1, r.stderr[-300:]


def _newer_format(data_dir):
    store = Store(data_dir)
    store.write_now(lambda txn: txn.put("meta", b"format_version", FORMAT_VERSION + 1))
    store.close()


def test_newer_format_refused_by_admin_commands(tmp_path):
    path = write_config(tmp_path)
    _newer_format(tmp_path / "data")
    r = run_cli("admin", "create-user", "x", "--password", "y", "--config", path)
    assert r.returncode == 2
    assert len(r.stderr.splitlines()) == 1 and "newer" in r.stderr and "Traceback" not in r.stderr


def test_newer_format_refused_by_server_start(tmp_path):
    path = write_config(tmp_path)
    _newer_format(tmp_path / "data")
    r = run_cli("--config", path)
    assert r.returncode == 2, r.stderr[-300:]
    assert len(r.stderr.splitlines()) == 1 and "newer" in r.stderr


def test_port_in_use_is_one_line(tmp_path):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        path = write_config(tmp_path, server={"port": busy.getsockname()[1], "gateway_port": free_port()})
        r = run_cli("--config", path)
    assert r.returncode == 2, r.stderr[-300:]
    assert len(r.stderr.splitlines()) == 1 and "in use" in r.stderr


async def test_second_server_on_same_data_dir_refused(tmp_path):
    async with await start_subprocess_server(tmp_path):
        other = tmp_path / "other"
        other.mkdir()
        path = write_config(other, storage={"data_dir": str(tmp_path / "data")})
        r = await acli("--config", path, check_rc=2)
        assert "in use by another chatd" in r.stderr and len(r.stderr.splitlines()) == 1


def test_version():
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("chatd ")


async def test_sigint_default_run_command(tmp_path):
    """`chatd run` is the same as no command."""
    async with await start_subprocess_server(tmp_path) as srv:
        srv.send_signal(signal.SIGINT)
        assert await srv.wait(10) == 0


def test_restore_backup_from_older_version(tmp_path):
    from tests.test_store import _older_env

    backup = tmp_path / "old-backup"
    _older_env(backup)
    path = write_config(tmp_path)
    r = run_cli("restore", "--config", path, backup)
    assert r.returncode == 0, r.stderr[-300:]
