"""`chatd` command line: run the server, check the config, admin tasks, backup and restore.

Any configuration or data-directory problem is one line on stderr and exit code 2.
"""

import argparse
import errno
import fcntl
import getpass
import json
import os
import shutil
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import trio

from . import __version__, logs
from . import config as config_mod
from .core.errors import ChatdError
from .store.lmdb import Store, StoreError

EXIT_USAGE = 2


class Fatal(Exception):
    """A one-line error for the operator."""


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="chatd", description="chatd — a self-hosted chat server")
    p.add_argument("--version", action="version", version=f"chatd {__version__}")
    p.add_argument("--config", default=None, help="path to config.toml (default: ./config.toml)")
    sub = p.add_subparsers(dest="command")

    def with_config(sp):
        sp.add_argument("--config", default=argparse.SUPPRESS, help="path to config.toml")
        return sp

    with_config(sub.add_parser("run", help="run the server (the default)"))
    with_config(sub.add_parser("check-config", help="validate the config and print the effective values"))
    admin = with_config(sub.add_parser("admin", help="administrative tasks"))
    asub = admin.add_subparsers(dest="admin_command", required=True)
    cu = with_config(asub.add_parser("create-user", help="create a user account"))
    cu.add_argument("name")
    how = cu.add_mutually_exclusive_group()
    how.add_argument("--password", help="the password (asked for on the terminal when omitted)")
    how.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    how.add_argument("--no-password", action="store_true",
                     help="create the account without a password (it cannot log in with one until it sets one)")
    ct = with_config(asub.add_parser("create-token", help="create an admin API token (printed once)"))
    ct.add_argument("--name", default="admin", help="a label for the token")
    b = with_config(sub.add_parser("backup", help="a consistent copy of the data, safe while the server runs"))
    b.add_argument("dest", help="a new or empty directory, or an earlier backup to replace")
    r = with_config(sub.add_parser("restore", help="replace the data directory with a backup (server stopped)"))
    r.add_argument("source", help="a directory made by `chatd backup`")
    r.add_argument("--force", action="store_true", help="replace existing data")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return _main(args)
    except BaseExceptionGroup as group:
        # Errors raised inside trio.run arrive wrapped; report the one that matters as if it were bare.
        leaf = _single_leaf(group)
        if leaf is None:
            raise
        try:
            raise leaf
        except (config_mod.ConfigError, StoreError, Fatal, ChatdError, OSError, KeyboardInterrupt):
            return _main_error(leaf)


def _single_leaf(group: BaseExceptionGroup) -> BaseException | None:
    leaves = []

    def walk(e):
        if isinstance(e, BaseExceptionGroup):
            for sub in e.exceptions:
                walk(sub)
        else:
            leaves.append(e)

    walk(group)
    return leaves[0] if len(leaves) == 1 else None


def _main_error(e: BaseException) -> int:
    if isinstance(e, KeyboardInterrupt):
        return 130
    if isinstance(e, ChatdError):
        print(f"chatd: {e.message}", file=sys.stderr)
        return 1
    if isinstance(e, OSError) and not isinstance(e, Fatal):
        where = f": {e.filename}" if e.filename else ""
        print(f"chatd: {e.strerror or e}{where}", file=sys.stderr)
        return EXIT_USAGE
    print(f"chatd: {e}", file=sys.stderr)
    return EXIT_USAGE


def _main(args) -> int:
    command = args.command or "run"
    try:
        config = config_mod.load(args.config or "config.toml")
        logs.setup(config.log.level, config.log.format)
        if command == "run":
            with data_lock(config):
                serve(config)
        elif command == "check-config":
            print(json.dumps(config_mod.to_dict(config), indent=2))
            print(dialects_summary(config), file=sys.stderr)
        elif command == "admin":
            return _admin(args, config)
        elif command == "backup":
            backup(config, Path(args.dest))
        elif command == "restore":
            with data_lock(config):
                restore(config, Path(args.source), force=args.force)
        return 0
    except (config_mod.ConfigError, StoreError, Fatal, ChatdError, OSError, KeyboardInterrupt) as e:
        return _main_error(e)


async def _run_server(config) -> None:
    from .server import run_until_signalled

    await run_until_signalled(config)


def serve(config) -> None:
    """Run the server; a listener that cannot open is one line naming its address and config key."""
    try:
        trio.run(_run_server, config)
    except BaseException as e:
        leaf = _single_leaf(e) if isinstance(e, BaseExceptionGroup) else e
        if not isinstance(leaf, OSError) or isinstance(leaf, Fatal):
            raise
        key, port = _failed_listener(config, leaf)
        address = f"{config.server.listen}:{port}"
        if leaf.errno == errno.EADDRINUSE:
            raise Fatal(f"cannot listen on {address} ([server] {key} = {port}): the port is in use "
                        f"(is another server running?); free it or choose another {key}") from None
        if leaf.errno == errno.EADDRNOTAVAIL:
            raise Fatal(f"cannot listen on {address}: {leaf.strerror} (check [server] listen)") from None
        raise Fatal(f"cannot listen on {address} ([server] {key} = {port}): {leaf.strerror or leaf}") from None


def _failed_listener(config, exc: OSError) -> tuple[str, int]:
    """Which listener failed to open: the traceback says whether it was Hypercorn (the HTTP port)
    or the WebSocket gateway; failing that, try binding each configured port."""
    modules = []
    tb = exc.__traceback__
    while tb is not None:
        modules.append(tb.tb_frame.f_globals.get("__name__", ""))
        tb = tb.tb_next
    if any(m.startswith("hypercorn") for m in modules):
        return "port", config.server.port
    if any(m.startswith("chatd.gateway") for m in modules):
        return "gateway_port", config.server.gateway_port
    for key in ("port", "gateway_port"):
        port = getattr(config.server, key)
        if port and not _can_bind(config.server.listen, port):
            return key, port
    return "port", config.server.port


def _can_bind(host: str, port: int) -> bool:
    try:
        for family, kind, proto, _, addr in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM):
            with socket.socket(family, kind, proto) as s:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                s.bind(addr)
    except OSError:
        return False
    return True


def dialects_summary(config) -> str:
    """Which dialects this chatd serves with this config, and which are configured but not available."""
    from .dialects import AVAILABLE

    served = [n for n in config_mod.DIALECTS if n in AVAILABLE and config.dialect(n).enabled]
    missing = [n for n in config_mod.DIALECTS if n not in AVAILABLE and config.dialect(n).enabled]
    disabled = [n for n in config_mod.DIALECTS if n in AVAILABLE and not config.dialect(n).enabled]
    lines = [f"dialects served: {', '.join(served) or 'none'}"]
    if disabled:
        lines.append(f"dialects disabled in the config: {', '.join(disabled)}")
    if missing:
        lines.append(f"enabled in the config but not available in this version (not served): {', '.join(missing)}")
    return "\n".join(lines)


@contextmanager
def data_lock(config):
    """Only one server (or restore) at a time per data directory."""
    config.data_dir.mkdir(parents=True, exist_ok=True)
    with open(config.data_dir / "chatd.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise Fatal(f"{config.data_dir} is in use by another chatd process") from None
        yield


def _open_store(config, batch: int | None = None) -> Store:
    return Store(config.data_dir, map_size=config.storage.map_size_mb << 20,
                 batch=batch or config.storage.commit_batch)


async def with_core(config, work, *, batch: int | None = None):
    """Run `await work(core)` on the data directory without serving (CLI tasks, bench set-up)."""
    from .core.services import Core

    store = _open_store(config, batch)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(store.run)
            try:
                return await work(Core(config, store))
            finally:
                await store.close_writes()
    finally:
        store.close()


def _admin(args, config) -> int:
    if args.admin_command == "create-user":
        password = _new_password(args)

        async def create(core):
            return await core.accounts.create(args.name, password=password)

        user = trio.run(with_core, config, create)
        print(json.dumps({"id": str(user.id), "login": user.login}))
    elif args.admin_command == "create-token":
        from .core import admin_tokens

        async def create_token(core):
            return await core.store.write(lambda txn: admin_tokens.create_txn(txn, core.ids, args.name))

        token = trio.run(with_core, config, create_token)
        print(token)
        print("Store it now: chatd keeps only its hash and cannot show it again.", file=sys.stderr)
    return 0


def _new_password(args) -> str | None:
    """The new account's password: --password, one line of stdin (--password-stdin), asked twice on
    the terminal, or none with --no-password. Without a terminal to ask on, refuse."""
    if args.no_password:
        return None
    if args.password is not None:
        password = args.password
    elif args.password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise Fatal("the passwords differ")
    else:
        raise Fatal("no password given and no terminal to ask for one: pass --password, "
                    "--password-stdin or --no-password")
    if not password:
        raise Fatal("the password is empty; pass --no-password to create an account without one")
    return password


BACKUP_MARKER = "chatd-backup.json"


def backup(config, dest: Path) -> None:
    """Write a backup to `dest`: a new or empty directory, or an earlier chatd backup, which is
    replaced only once the new one is complete (so a failed backup leaves the old one in place)."""
    if dest.exists() and not dest.is_dir():
        raise Fatal(f"{dest} is not a directory")
    if dest.exists() and any(dest.iterdir()) and not (dest / BACKUP_MARKER).exists():
        raise Fatal(f"{dest} is not empty and is not a chatd backup; choose a new directory")
    if not (config.data_dir / "db").exists():
        raise Fatal(f"no data in {config.data_dir}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.parent / f".{dest.name}.partial-{os.getpid()}"
    try:
        store = _open_store(config)
        try:
            store.copy_to(partial / "db")
        finally:
            store.close()
        files = config.data_dir / "files"
        if files.exists():
            # Files are content-addressed and never rewritten, so copying them after the LMDB
            # snapshot keeps every file the snapshot refers to.
            shutil.copytree(files, partial / "files", dirs_exist_ok=True)
        (partial / BACKUP_MARKER).write_text(json.dumps({"version": __version__, "created": time.time()}))
        _replace_dir(partial, dest)
    finally:
        if partial.exists():
            shutil.rmtree(partial)
    print(f"backup written to {dest}")


def _replace_dir(new: Path, dest: Path) -> None:
    """Put the complete directory `new` at `dest`, removing what was there only afterwards."""
    if not dest.exists():
        new.rename(dest)
        return
    old = dest.parent / f".{dest.name}.old-{os.getpid()}"
    dest.rename(old)
    try:
        new.rename(dest)
    except BaseException:
        old.rename(dest)
        raise
    shutil.rmtree(old)


def restore(config, source: Path, *, force: bool) -> None:
    """Replace the data directory's db/ and files/ with a backup's. The backup is only read (never
    opened with LMDB, which would write a lock file into it): it is copied next to the data first,
    the copy's format is checked, and only then is the old data replaced."""
    if not (source / "db" / "data.mdb").exists():
        raise Fatal(f"{source} is not a chatd backup (no db/data.mdb)")
    target = config.data_dir
    if (target / "db").exists() and not force:
        raise Fatal(f"{target} already has data; pass --force to replace it")
    staging = target / f".restore-{os.getpid()}"
    try:
        shutil.copytree(source / "db", staging / "db", ignore=shutil.ignore_patterns("lock.mdb"))
        if (source / "files").exists():
            shutil.copytree(source / "files", staging / "files")
        Store(staging, readonly=True).close()  # refuses a newer format before the data is touched
        for name in ("db", "files"):
            if (target / name).exists():
                shutil.rmtree(target / name)
            if (staging / name).exists():
                (staging / name).rename(target / name)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
    print(f"restored {source} into {target}")
