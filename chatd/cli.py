"""`chatd` command line: run the server, check the config, admin tasks, backup and restore.

Any configuration or data-directory problem is one line on stderr and exit code 2.
"""

import argparse
import fcntl
import getpass
import json
import shutil
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
    cu.add_argument("--password", help="the password (asked for when omitted)")
    ct = with_config(asub.add_parser("create-token", help="create an admin API token (printed once)"))
    ct.add_argument("--name", default="admin", help="a label for the token")
    b = with_config(sub.add_parser("backup", help="a consistent copy of the data, safe while the server runs"))
    b.add_argument("dest", help="a new or empty directory")
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
        print(f"chatd: {e.strerror or e} (is another server using the port?)", file=sys.stderr)
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
                trio.run(_run_server, config)
        elif command == "check-config":
            print(json.dumps(config_mod.to_dict(config), indent=2))
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
        password = args.password
        if password is None:
            if sys.stdin.isatty():
                password = getpass.getpass("password: ")
                if getpass.getpass("again: ") != password:
                    raise Fatal("the passwords differ")
            else:
                password = sys.stdin.readline().rstrip("\n")

        async def create(core):
            return await core.accounts.create(args.name, password=password or None)

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


def backup(config, dest: Path) -> None:
    if dest.exists() and any(dest.iterdir()):
        raise Fatal(f"{dest} is not empty")
    if not (config.data_dir / "db").exists():
        raise Fatal(f"no data in {config.data_dir}")
    store = _open_store(config)
    try:
        store.copy_to(dest / "db")
    finally:
        store.close()
    files = config.data_dir / "files"
    if files.exists():
        # Files are content-addressed and never rewritten, so copying them after the LMDB
        # snapshot keeps every file the snapshot refers to.
        shutil.copytree(files, dest / "files", dirs_exist_ok=True)
    (dest / "chatd-backup.json").write_text(json.dumps({"version": __version__, "created": time.time()}))
    print(f"backup written to {dest}")


def restore(config, source: Path, *, force: bool) -> None:
    if not (source / "db" / "data.mdb").exists():
        raise Fatal(f"{source} is not a chatd backup (no db/data.mdb)")
    target = config.data_dir
    if (target / "db").exists() and not force:
        raise Fatal(f"{target} already has data; pass --force to replace it")
    Store(source, readonly=True).close()  # refuses a newer format before anything is touched
    for name in ("db", "files"):
        if (target / name).exists():
            shutil.rmtree(target / name)
    shutil.copytree(source / "db", target / "db")
    if (source / "files").exists():
        shutil.copytree(source / "files", target / "files")
    print(f"restored {source} into {target}")
