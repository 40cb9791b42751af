"""The `chatd` command line: admin create-user, backup while a server runs and writes, restore,
and one-line errors (exit 2) for data-directory and start-up problems."""

import json
import signal
import subprocess
import sys

import cbor2
import pytest
import trio

from chatd import config as config_mod
from chatd.core.models import User
from chatd.store import tables as T
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
    # The password from stdin when asked to.
    r = run_cli("admin", "create-user", "bob", "--password-stdin", "--config", path, input="pw2\n")
    assert r.returncode == 0, r.stderr
    store = Store(tmp_path / "data")
    try:
        with store.read() as txn:
            uid = txn.get(T.username_userid, T.username_userid.key("alice"))
            user = txn.get(T.userid_user, T.userid_user.key(uid))
            assert user.login == "Alice" and user.password_hash.startswith(b"$argon2id$")
            assert txn.exists(T.username_userid, T.username_userid.key("bob"))
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
        # A second backup to the same (dated) directory replaces the first one.
        first_marker = json.loads((backup / "chatd-backup.json").read_text())
        r = await acli("backup", "--config", srv.config_path, backup)
        assert "backup written" in r.stdout
        assert json.loads((backup / "chatd-backup.json").read_text())["created"] > first_marker["created"]
        assert sorted(p.name for p in backup.parent.iterdir() if p.name.startswith(".")) == []
        # A non-empty directory that is not a chatd backup is never overwritten.
        other = tmp_path / "not-a-backup"
        other.mkdir()
        (other / "keep.txt").write_text("mine")
        r = await acli("backup", "--config", srv.config_path, other, check_rc=2)
        assert "not empty" in r.stderr and len(r.stderr.splitlines()) == 1
        assert [p.name for p in other.iterdir()] == ["keep.txt"]
        # Restoring over the data of a running server is refused (it holds the data lock).
        r = await acli("restore", "--config", srv.config_path, backup, "--force", check_rc=2)
        assert "in use" in r.stderr

    assert json.loads((backup / "chatd-backup.json").read_text())["version"]
    copy = Store(backup)
    try:
        with copy.read() as txn:
            assert txn.get(T.meta, T.meta.key("format_version")) == FORMAT_VERSION
            logins = sorted(txn.get(T.userid_user, T.userid_user.key(uid)).login
                            for _, uid in txn.scan(T.username_userid))
            assert logins == ["alice", "bob", "carol"]
            burst = list(txn.scan_raw(T.meta, prefix=b"burst:"))
            assert burst, "the backup holds the writes committed before it"
            assert all(check_record(cbor2.loads(raw)) for _, raw in burst)
    finally:
        copy.close()

    fresh = tmp_path / "fresh"
    fresh.mkdir()
    config_path = write_config(fresh)
    before = _tree(backup)
    r = await acli("restore", "--config", config_path, backup)
    assert "restored" in r.stdout
    assert _tree(backup) == before, "restore left the backup byte-for-byte unchanged"
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


def _tree(root) -> dict:
    """Every file and directory under `root`: its contents (files) and modification time."""
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
            for p in sorted(root.rglob("*"))}


def _user(data_dir, login: str) -> User | None:
    store = Store(data_dir)
    try:
        with store.read() as txn:
            uid = txn.get(T.username_userid, T.username_userid.key(login))
            return None if uid is None else txn.get(T.userid_user, T.userid_user.key(uid))
    finally:
        store.close()


def test_admin_create_user_without_password_or_terminal_is_refused(tmp_path):
    path = write_config(tmp_path)
    r = run_cli("admin", "create-user", "carol", "--config", path, input="")
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.splitlines()) == 1 and "no terminal" in r.stderr and "--no-password" in r.stderr
    assert _user(tmp_path / "data", "carol") is None
    # An empty password is refused too, whichever way it comes.
    r = run_cli("admin", "create-user", "carol", "--password-stdin", "--config", path, input="\n")
    assert r.returncode == 2 and "empty" in r.stderr
    assert _user(tmp_path / "data", "carol") is None
    # A password-less account only when asked for explicitly.
    r = run_cli("admin", "create-user", "carol", "--no-password", "--config", path)
    assert r.returncode == 0, r.stderr
    user = _user(tmp_path / "data", "carol")
    assert user is not None and not user.password_hash


def test_admin_create_user_asks_on_the_terminal(tmp_path):
    """With a terminal and no --password: asked twice (getpass, not echoed), and both must match."""
    import os
    import pty
    import select

    path = write_config(tmp_path)

    def run_on_tty(name: str, answers: list[str]) -> tuple[int, str]:
        pid, fd = pty.fork()
        if pid == 0:  # the child: its controlling terminal is the pty
            os.chdir(REPO)
            os.execv(sys.executable, [sys.executable, "-m", "chatd", "admin", "create-user", name,
                                      "--config", str(path)])
        out = b""
        pending = list(answers)
        try:
            while True:
                ready, _, _ = select.select([fd], [], [], 20)
                if not ready:
                    break
                try:
                    chunk = os.read(fd, 4096)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
                prompts = out.count(b"password: ") + out.count(b"again: ")
                if pending and prompts > len(answers) - len(pending):  # answer each prompt once
                    os.write(fd, pending.pop(0).encode() + b"\n")
        finally:
            os.close(fd)
            _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), out.decode(errors="replace")

    rc, out = run_on_tty("dora", ["secret-1", "secret-1"])
    assert rc == 0, out
    assert "password:" in out and "again:" in out and "secret-1" not in out  # not echoed
    user = _user(tmp_path / "data", "dora")
    assert user is not None and user.password_hash.startswith(b"$argon2id$")
    rc, out = run_on_tty("erin", ["secret-1", "secret-2"])
    assert rc == 2 and "differ" in out
    assert _user(tmp_path / "data", "erin") is None


def test_backup_twice_to_the_same_directory(tmp_path):
    """The README's `chatd backup … /backups/chatd-$(date +%F)` run twice in a day replaces the
    first backup with the second."""
    path = write_config(tmp_path)
    assert run_cli("admin", "create-user", "alice", "--password", "pw", "--config", path).returncode == 0
    dest = tmp_path / "backups" / "chatd-2026-01-01"
    r = run_cli("backup", "--config", path, dest)
    assert r.returncode == 0, r.stderr
    assert run_cli("admin", "create-user", "bob", "--password", "pw", "--config", path).returncode == 0
    r = run_cli("backup", "--config", path, dest)
    assert r.returncode == 0, r.stderr
    assert [p.name for p in dest.parent.iterdir()] == [dest.name]  # no partial or old copies left
    assert _user(dest, "bob") is not None


def test_restore_leaves_the_backup_unchanged(tmp_path):
    """`chatd restore` only reads the backup: no LMDB lock file or anything else written into it."""
    live, fresh = tmp_path / "live", tmp_path / "fresh"
    live.mkdir()
    fresh.mkdir()
    path = write_config(live)
    assert run_cli("admin", "create-user", "alice", "--password", "pw", "--config", path).returncode == 0
    dest = tmp_path / "backup"
    assert run_cli("backup", "--config", path, dest).returncode == 0
    before = _tree(dest)
    fresh_path = write_config(fresh)
    r = run_cli("restore", "--config", fresh_path, dest)
    assert r.returncode == 0, r.stderr
    assert _tree(dest) == before
    assert _user(fresh / "data", "alice") is not None
    assert [p.name for p in (fresh / "data").iterdir() if p.name.startswith(".")] == []  # no staging left


def test_admin_create_user_taken_login_is_one_line(tmp_path):
    path = write_config(tmp_path)
    assert run_cli("admin", "create-user", "Alice", "--password", "x", "--config", path).returncode == 0
    r = run_cli("admin", "create-user", "ALICE", "--password", "x", "--config", path)
    assert r.returncode == 1 and "taken" in r.stderr
    assert len(r.stderr.splitlines()) == 1, r.stderr[-300:]


def _newer_format(data_dir):
    store = Store(data_dir)
    store.write_now(lambda txn: txn.put(T.meta, T.meta.key("format_version"), FORMAT_VERSION + 1))
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


@pytest.mark.parametrize("key", ["port", "gateway_port"])
def test_port_in_use_names_the_port(tmp_path, key):
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        other = "gateway_port" if key == "port" else "port"
        path = write_config(tmp_path, server={key: port, other: free_port()})
        r = run_cli("--config", path)
    assert r.returncode == 2, r.stderr[-300:]
    line = r.stderr.strip()
    assert len(line.splitlines()) == 1 and "in use" in line
    assert f"127.0.0.1:{port}" in line and f"{key} = {port}" in line, line


def test_check_config_says_which_dialects_are_served(tmp_path):
    from chatd.dialects import AVAILABLE

    path = write_config(tmp_path, dialects={name: {"enabled": True} for name in config_mod.DIALECTS})
    r = run_cli("check-config", "--config", path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["dialects"]["sama"]["enabled"] is True  # stdout stays the JSON
    served = next(line for line in r.stderr.splitlines() if line.startswith("dialects served:"))
    assert served == "dialects served: " + ", ".join(n for n in config_mod.DIALECTS if n in AVAILABLE)
    missing = [n for n in config_mod.DIALECTS if n not in AVAILABLE]
    if missing:
        assert f"not available in this version (not served): {', '.join(missing)}" in r.stderr
    path = write_config(tmp_path, dialects={name: {"enabled": False} for name in config_mod.DIALECTS})
    r = run_cli("check-config", "--config", path)
    assert "dialects served: none" in r.stderr and "not available" not in r.stderr


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
