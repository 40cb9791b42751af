"""Shared test helpers: configs, free ports, a chatd server in a subprocess.

`make_config` is what the `config` fixture uses; dialect tests import it to
build their own configs (`make_config(tmp_path, dialects={"sama": {"enabled": True}})`).
"""

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import trio

from chatd import config as config_mod

REPO = Path(__file__).resolve().parents[2]

# The settings every test server runs with; tests override them per section.
TEST_DEFAULTS = {
    "server": {"port": 0, "gateway_port": 0},
    "auth": {"argon2_cost": "min"},
    "log": {"access_log": False},
}
# Dialects are opt-in in tests: `make_config(tmp_path, dialects={"sama": {"enabled": True}})`.
# Foundation tests then run without any dialect, and a dialect's tests load only that dialect.
TEST_DEFAULTS["dialects"] = {name: {"enabled": False} for name in config_mod.DIALECTS}


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def to_toml(sections: dict) -> str:
    """A small TOML writer for config dicts: `{section: {key: value}}`, and `dialects.<name>` tables."""
    lines = []
    for section, table in sections.items():
        if section == "dialects":
            for name, dtable in table.items():
                lines.append(f"[dialects.{name}]")
                lines += [f"{k} = {_toml_value(v)}" for k, v in dtable.items()]
                lines.append("")
            continue
        lines.append(f"[{section}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
        lines.append("")
    return "\n".join(lines)


def config_sections(tmp_path: Path, **sections) -> dict:
    """The test defaults merged with per-section overrides (dicts), as plain data."""
    merged = {name: dict(values) for name, values in TEST_DEFAULTS.items() if name != "dialects"}
    merged["dialects"] = {name: dict(values) for name, values in TEST_DEFAULTS["dialects"].items()}
    merged.setdefault("storage", {})["data_dir"] = str(Path(tmp_path) / "data")
    for name, values in sections.items():
        if name == "dialects":
            dialects = merged.setdefault("dialects", {})
            for dname, dvalues in values.items():
                dialects.setdefault(dname, {}).update(dvalues)
        else:
            merged.setdefault(name, {}).update(values)
    return merged


def make_config(tmp_path, **sections) -> config_mod.Config:
    """A validated `Config` for a test server in `tmp_path` (any port, data in tmp_path/data)."""
    tmp_path = Path(tmp_path)
    return config_mod.parse(to_toml(config_sections(tmp_path, **sections)), tmp_path / "config.toml")


def write_config(tmp_path, **sections) -> Path:
    """Write a test config.toml into `tmp_path` and return its path."""
    path = Path(tmp_path) / "config.toml"
    path.write_text(to_toml(config_sections(tmp_path, **sections)))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_cli(*args, timeout: float = 30, input: str | None = None) -> subprocess.CompletedProcess:
    """`python -m chatd ARGS…` as a subprocess, text output captured."""
    return subprocess.run(
        [sys.executable, "-m", "chatd", *map(str, args)],
        capture_output=True, text=True, timeout=timeout, input=input, cwd=REPO,
    )


class SubprocessServer:
    """A `python -m chatd --config …` child process and where to reach it."""

    def __init__(self, proc: trio.Process, config_path: Path, http_port: int, gateway_port: int,
                 data_dir: Path, log_path: Path):
        self.proc = proc
        self.config_path = config_path
        self.http_url = f"http://127.0.0.1:{http_port}"
        self.ws_url = f"ws://127.0.0.1:{gateway_port}"
        self.data_dir = data_dir
        self.log_path = log_path

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def send_signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    async def wait(self, timeout: float = 10) -> int:
        with trio.fail_after(timeout):
            return await self.proc.wait()

    async def aclose(self) -> None:
        """Kill the process if it still runs (tests that stop it themselves leave nothing to do)."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self.proc.wait()

    async def __aenter__(self):
        return self

    async def __aexit__(self, *exc):
        await self.aclose()


async def start_subprocess_server(tmp_path, *, startup_timeout: float = 20, **sections) -> SubprocessServer:
    """Start chatd in a child process on fixed free ports; return once GET /health answers.

    Use it as `async with await start_subprocess_server(tmp_path) as srv:` so the
    process is killed even when the test fails.
    """
    tmp_path = Path(tmp_path)
    http_port, gateway_port = free_port(), free_port()
    while gateway_port == http_port:
        gateway_port = free_port()
    server = dict(sections.pop("server", {}))
    server.update(port=http_port, gateway_port=gateway_port)
    config_path = write_config(tmp_path, server=server, **sections)
    data_dir = Path(config_mod.load(config_path).data_dir)
    log_path = tmp_path / f"chatd-{http_port}.log"
    with open(log_path, "wb") as log:
        proc = await trio.lowlevel.open_process(
            [sys.executable, "-m", "chatd", "--config", str(config_path)],
            stdout=log, stderr=subprocess.STDOUT, cwd=str(REPO),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    srv = SubprocessServer(proc, config_path, http_port, gateway_port, data_dir, log_path)
    try:
        with trio.fail_after(startup_timeout):
            async with httpx.AsyncClient(base_url=srv.http_url) as client:
                while True:
                    if proc.returncode is not None or proc.poll() is not None:
                        raise RuntimeError(f"chatd exited with {proc.returncode} at start-up:\n{srv.log}")
                    try:
                        if (await client.get("/health")).status_code == 200:
                            break
                    except httpx.TransportError:
                        pass
                    await trio.sleep(0.05)
            # The gateway listens once the HTTP port does (server.py starts it right after),
            # but make sure: wait until it accepts TCP connections.
            while True:
                try:
                    stream = await trio.open_tcp_stream("127.0.0.1", gateway_port)
                    await stream.aclose()
                    break
                except OSError:
                    await trio.sleep(0.05)
    except BaseException:
        await srv.aclose()
        raise
    return srv


def count_hashes(server) -> list[int]:
    """Count every argon2 computation (verify and hash) of a running server: `calls[0]`."""
    hasher = server.core.hasher
    calls = [0]
    verify_sync, hash_sync = hasher.verify_sync, hasher.hash_sync

    def counting_verify(stored, password):
        calls[0] += 1
        return verify_sync(stored, password)

    def counting_hash(password):
        calls[0] += 1
        return hash_sync(password)

    hasher.verify_sync, hasher.hash_sync = counting_verify, counting_hash
    return calls
