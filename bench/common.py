"""Shared pieces of the benchmarks: the chatd subprocess, /proc readings, percentiles, JSON lines,
and a small SAMA WebSocket client."""

import contextlib
import ctypes
import itertools
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import msgspec
import trio

from . import wsclient

REPO = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")
PASSWORD = "bench-password"

_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class BenchError(Exception):
    pass


# -- numbers -----------------------------------------------------------------------------------


def percentile(sorted_values: list[float], p: float) -> float | None:
    """Nearest-rank percentile of an already sorted list (None when empty)."""
    if not sorted_values:
        return None
    k = max(0, min(len(sorted_values) - 1, int(round(p / 100 * len(sorted_values) + 0.5)) - 1))
    return sorted_values[k]


def ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def latency_fields(samples_s: list[float]) -> dict:
    s = sorted(samples_s)
    return {"p50_ms": ms(percentile(s, 50)), "p95_ms": ms(percentile(s, 95)), "p99_ms": ms(percentile(s, 99))}


def line(workload: str, *, n: int, throughput: float | None, unit: str, lat: dict, cpu_s: float | None,
         rss_kb: int | None, notes: str, dialect: str = "sama", summary: bool = False) -> dict:
    out = {"server": "chatd", "dialect": dialect, "workload": workload, "n": n,
           "throughput": None if throughput is None else round(throughput, 1), "unit": unit,
           "p50_ms": lat.get("p50_ms"), "p95_ms": lat.get("p95_ms"), "p99_ms": lat.get("p99_ms"),
           "server_cpu_s": None if cpu_s is None else round(cpu_s, 3), "server_rss_kb": rss_kb, "notes": notes}
    if summary:
        out["summary"] = True
    return out


def emit(obj: dict) -> None:
    print(json.dumps(obj), flush=True)


def log(*parts) -> None:
    print("#", *parts, file=sys.stderr, flush=True)


# -- /proc ---------------------------------------------------------------------------------------


def proc_cpu_s(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for row in f:
                if row.startswith(("VmRSS", "RssAnon", "RssFile", "RssShmem", "VmHWM")):
                    name, value = row.split(":", 1)
                    out[name] = int(value.split()[0])
    except OSError:
        pass
    return out


def rss_kb(pid: int) -> int | None:
    return proc_status(pid).get("VmRSS")


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        target = hard if hard != resource.RLIM_INFINITY else 1 << 20
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


# -- the server subprocess ------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


CONFIG_TEMPLATE = """\
[server]
listen = "127.0.0.1"
port = {http_port}
gateway_port = {ws_port}
public_url = "http://127.0.0.1:{http_port}"

[storage]
data_dir = "{data_dir}"
map_size_mb = {map_size_mb}
commit_batch = 256

[log]
level = "warning"
access_log = false

[limits]
rate_per_second = 1000000.0
rate_burst = 1000000
max_connections_per_user = 10000
outbound_queue = 100000
heartbeat_interval = 600.0
idle_timeout = 3600.0

[auth]
argon2_cost = "min"
hash_concurrency = 4

[dialects.sama]
enabled = true
{other_dialects}
"""


def write_config(workdir: Path, data_dir: Path, *, sockchat: bool = False, map_size_mb: int = 16384) -> Path:
    from chatd.config import DIALECTS

    others = "".join(
        f"\n[dialects.{name}]\nenabled = {'true' if (name == 'sockchat' and sockchat) else 'false'}\n"
        for name in DIALECTS if name != "sama")
    path = workdir / "config.toml"
    path.write_text(CONFIG_TEMPLATE.format(http_port=free_port(), ws_port=free_port(), data_dir=str(data_dir),
                                           map_size_mb=map_size_mb, other_dialects=others))
    return path


def _die_with_parent() -> None:
    # The server must not outlive the driver, even if the driver is killed.
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


class Target:
    """Where the server is: URLs and pid (of a process we started, or given)."""

    def __init__(self, http_url: str, ws_url: str, pid: int | None, proc: subprocess.Popen | None = None,
                 config_path: Path | None = None, log_path: Path | None = None):
        self.http_url = http_url.rstrip("/")
        self.ws_url = ws_url
        self.pid = pid
        self.proc = proc
        self.config_path = config_path
        self.log_path = log_path


def _config_urls(config_path: Path) -> tuple[str, str]:
    import tomllib

    raw = tomllib.loads(config_path.read_text())
    return (f"http://127.0.0.1:{raw['server']['port']}", f"ws://127.0.0.1:{raw['server']['gateway_port']}/")


@contextlib.contextmanager
def managed_server(config_path: Path, *, ready_timeout: float = 30.0):
    """Start `python -m chatd --config …`; always kill it on the way out."""
    http_url, ws_url = _config_urls(config_path)
    log_path = config_path.parent / "server.log"
    with open(log_path, "ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "chatd", "--config", str(config_path)], cwd=str(REPO),
                                stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    try:
        port = int(ws_url.rsplit(":", 1)[1].strip("/"))
        hport = int(http_url.rsplit(":", 1)[1])
        deadline = time.monotonic() + ready_timeout
        ready = False
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise BenchError(f"chatd exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
            try:
                for p in (port, hport):
                    with socket.create_connection(("127.0.0.1", p), timeout=0.5):
                        pass
                ready = True
                break
            except OSError:
                time.sleep(0.05)
        if not ready:
            raise BenchError(f"chatd did not listen within {ready_timeout}s")
        time.sleep(0.2)
        yield Target(http_url, ws_url, proc.pid, proc, config_path, log_path)
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if the process has not exited within 10 s."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextlib.contextmanager
def temp_workdir(keep: bool = False):
    d = tempfile.mkdtemp(prefix="chatd-bench-")
    try:
        yield Path(d)
    finally:
        if not keep:
            subprocess.run(["rm", "-rf", d], check=False)


# -- a SAMA client ----------------------------------------------------------------------------------


class Client:
    """One SAMA WebSocket. `run_reader` dispatches responses to `request` callers and every other
    packet to `on_packet(client, packet, t_received)`."""

    __slots__ = ("ws", "_ids", "_pending", "on_packet", "user_id", "token", "login", "idx", "extra")

    def __init__(self, ws, idx: int = 0):
        self.ws = ws
        self.idx = idx
        self._ids = itertools.count(1)
        self._pending: dict[str, list] = {}
        self.on_packet = None
        self.user_id: str | None = None
        self.token: str | None = None
        self.login: str | None = None
        self.extra = None

    async def run_reader(self) -> None:
        # Bounded by the connection: ends when it closes or the caller's cancel scope fires.
        perf = time.perf_counter
        pending = self._pending
        while True:
            batch = await self.ws.receive_batch()
            if not batch:
                return
            now = perf()
            for data in batch:
                packet = _decode(data)
                response = packet.get("response")
                if response is not None:
                    waiter = pending.pop(str(response.get("id")), None)
                    if waiter is not None:
                        waiter[1] = response
                        waiter[2] = now
                        waiter[0].set()
                    continue
                if self.on_packet is not None:
                    self.on_packet(self, packet, now)

    async def send(self, packet: dict) -> None:
        await self.ws.send_text(_encode(packet).decode())

    async def request(self, op: str, body: dict, *, timeout: float = 60.0, timed: bool = False):
        rid = str(next(self._ids))
        waiter = [trio.Event(), None, 0.0]
        self._pending[rid] = waiter
        t0 = time.perf_counter()
        await self.send({"request": {op: body, "id": rid}})
        with trio.fail_after(timeout):
            await waiter[0].wait()
        response = waiter[1]
        if "error" in response:
            raise BenchError(f"{op} failed: {response['error']}")
        return (response, waiter[2] - t0) if timed else response


@contextlib.asynccontextmanager
async def open_client(url: str, idx: int = 0):
    async with wsclient.connect(url) as ws:
        c = Client(ws, idx)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(c.run_reader)
            try:
                yield c
            finally:
                nursery.cancel_scope.cancel()


async def create_and_login(c: Client, login: str, device: str) -> None:
    r = await c.request("user_create", {"login": login, "password": PASSWORD})
    c.user_id = r["user"]["_id"]
    r = await c.request("user_login", {"login": login, "password": PASSWORD, "device_id": device})
    c.token = r.get("token")
    c.login = login
