"""W1 (pairs) through the sockchat dialect: REST setup, then Socket.IO v5 over an Engine.IO v4
WebSocket spoken raw with trio-websocket. One JSON line per run (WORKLOADS.md format, dialect
"sockchat").

    python -m bench.sockchat_load                     # W1 once, against a chatd it starts
    python -m bench.sockchat_load --runs 3
    python -m bench.sockchat_load --http-url http://127.0.0.1:8080 --pid 1234

Setup (untimed): `POST /new {username}` per user (token), `POST /create-channel {to, type: 1}` per
pair, then each client opens `ws://…/socket.io/?EIO=4&transport=websocket` with the `Authorisation`
and `channels` headers (as the document says), sends `40` and waits for `40{sid}`.
Timed: every user emits `42<ackid>["message", {content, channel}]`, at most `--inflight`
unacknowledged (the `43<ackid>[{ok, data}]` ack frees a slot); the partner receives
`42["message", {...}]`. The send `perf_counter` is the start of `content`; latency = send → the
partner's receive. Engine.IO pings (`2`) are answered (`3`).

W2 (fan-out) has no sockchat form: sockchat channels are DMs only (type 1), and the dialect does not
show other dialects' groups, so a 100-member group cannot be heard over sockchat.
"""

import argparse
import itertools
import statistics
import sys
import time

import httpx
import msgspec
import trio

from . import wsclient
from .common import (
    BenchError,
    emit,
    latency_fields,
    line,
    log,
    managed_server,
    ms,
    percentile,
    proc_cpu_s,
    raise_nofile,
    rss_kb,
    temp_workdir,
    write_config,
)

perf = time.perf_counter
_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder().decode


class SioClient:
    """One Socket.IO client on the default namespace, over the Engine.IO WebSocket transport."""

    def __init__(self, ws, idx: int):
        self.ws = ws
        self.idx = idx
        self.ack_ids = itertools.count(1)
        self.on_event = None  # (client, name, args, t_received)
        self.on_ack = None  # (client, ack_id, args, t_received)
        self.connected = trio.Event()
        self.user_id: str | None = None
        self.token: str | None = None
        self.channel: str | None = None

    async def run_reader(self) -> None:
        # Bounded by the connection: ends when it closes or the caller's cancel scope fires.
        while True:
            batch = await self.ws.receive_batch()
            if not batch:
                return
            now = perf()
            for data in batch:
                if not isinstance(data, str) or not data:
                    continue
                kind = data[0]
                if kind == "2":  # Engine.IO ping
                    await self.ws.send_text("3")
                elif kind == "4":  # Engine.IO message: a Socket.IO packet
                    self._packet(data[1:], now)

    def _packet(self, text: str, now: float) -> None:
        kind, rest = text[0], text[1:]
        if kind == "0":  # CONNECT {sid}
            self.connected.set()
            return
        if kind == "4":  # CONNECT_ERROR
            raise BenchError(f"socket.io connect refused: {rest}")
        if kind in "23":  # EVENT / ACK: optional namespace "/x," (none here), optional id, JSON array
            i = 0
            while i < len(rest) and rest[i].isdigit():
                i += 1
            ack_id = int(rest[:i]) if i else None
            args = _decode(rest[i:])
            if kind == "2" and self.on_event is not None:
                self.on_event(self, args[0], args[1:], now)
            elif kind == "3" and self.on_ack is not None:
                self.on_ack(self, ack_id, args, now)

    async def emit(self, event: str, payload, ack_id: int | None = None) -> None:
        body = _encode([event, payload]).decode()
        await self.ws.send_text(f"42{ack_id if ack_id is not None else ''}{body}")


async def _client(url: str, idx: int, token: str, channels: list[str], nursery_ready, finished):
    headers = [("Authorisation", token), ("channels", ",".join(channels))]
    async with wsclient.connect(url, headers=headers) as ws:
        c = SioClient(ws, idx)
        with trio.fail_after(30):
            first = await ws.receive_batch()  # Engine.IO OPEN: 0{sid, pingInterval, ...}
        if not first or not first[0].startswith("0"):
            raise BenchError(f"expected an Engine.IO open packet, got {first[:1]!r}")
        ws.early = first[1:]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(c.run_reader)
            await ws.send_text("40")
            with trio.fail_after(30):
                await c.connected.wait()
            nursery_ready(c)
            await finished.wait()
            nursery.cancel_scope.cancel()


def setup_users(http_url: str, pairs: int, tag: str) -> list[dict]:
    """Untimed: 2 × pairs users via POST /new, a DM channel per pair via POST /create-channel."""
    users = []
    with httpx.Client(base_url=http_url, timeout=30) as http:
        for i in range(2 * pairs):
            r = http.post("/new", json={"username": f"sc{tag}u{i}"})
            if r.status_code != 201:
                raise BenchError(f"POST /new: {r.status_code} {r.text[:200]}")
            data = r.json()
            users.append({"id": str(data["id"]), "token": data["token"]})
        for k in range(pairs):
            a, b = users[2 * k], users[2 * k + 1]
            r = http.post("/create-channel", json={"to": b["id"], "type": 1}, headers={"Authorisation": a["token"]})
            if r.status_code != 201:
                raise BenchError(f"POST /create-channel: {r.status_code} {r.text[:200]}")
            a["channel"] = b["channel"] = r.json()["channel_id"]
    return users


async def w1(http_url: str, pid: int | None, args, run: int, users: list[dict]) -> dict:
    n_clients = len(users)
    per = args.messages
    ws_url = http_url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket"
    clients: list[SioClient | None] = [None] * n_clients
    ready = [0]
    all_ready = trio.Event()
    finished = trio.Event()

    def on_ready(c):
        clients[c.idx] = c
        ready[0] += 1
        if ready[0] == n_clients:
            all_ready.set()

    async def one(i):
        # Each client stays connected until `finished` is set.
        await _client(ws_url, i, users[i]["token"], [users[i]["channel"]], on_ready, finished)

    total = n_clients * per
    st = {"received": 0, "acked": 0, "errors": 0, "last": 0.0, "unexpected": 0}
    recv_lat: list[float] = []
    ack_lat: list[float] = []
    done = trio.Event()
    slots: dict[int, trio.Semaphore] = {}
    sent_at: dict[tuple[int, int], float] = {}

    def check():
        if st["received"] >= total and st["acked"] + st["errors"] >= total:
            done.set()

    def on_event(c, name, a, now):
        if name != "message" or not a or not isinstance(a[0], dict):
            st["unexpected"] += 1
            return
        content = a[0].get("content", "")
        if content.startswith("b:"):
            recv_lat.append(now - float(content[2:].split(" ", 1)[0]))
            st["received"] += 1
            st["last"] = now
            check()
        else:
            st["unexpected"] += 1

    def on_ack(c, ack_id, a, now):
        t = sent_at.pop((c.idx, ack_id), None)
        if t is None:
            return
        if a and isinstance(a[0], dict) and a[0].get("ok"):
            st["acked"] += 1
            ack_lat.append(now - t)
        else:
            st["errors"] += 1
        slots[c.idx].release()
        check()

    async def send_loop(c: SioClient):
        sem = slots[c.idx]
        for _ in range(per):
            await sem.acquire()
            ack_id = next(c.ack_ids)
            t = perf()
            sent_at[(c.idx, ack_id)] = t
            await c.emit("message", {"content": f"b:{t!r} {'p' * args.body_pad}", "channel": c.channel}, ack_id)

    result = {}
    async with trio.open_nursery() as nursery:
        for i in range(n_clients):
            nursery.start_soon(one, i)
        with trio.fail_after(120):
            await all_ready.wait()
        try:
            for c in clients:
                c.channel = users[c.idx]["channel"]
                c.on_event, c.on_ack = on_event, on_ack
                slots[c.idx] = trio.Semaphore(args.inflight)
            await trio.sleep(0.5)
            cpu0 = proc_cpu_s(pid) if pid else None
            t0 = perf()
            with trio.move_on_after(args.workload_timeout):
                async with trio.open_nursery() as senders:
                    for c in clients:
                        senders.start_soon(send_loop, c)
                    await done.wait()
            result["cpu"] = (proc_cpu_s(pid) - cpu0) if cpu0 is not None else None
            result["elapsed"] = (st["last"] or perf()) - t0
            result["rss"] = rss_kb(pid) if pid else None
        finally:
            finished.set()
    acks = sorted(ack_lat)
    n = st["received"]
    notes = (f"run {run}; {n_clients // 2} pairs x2 users x {per} msgs over Socket.IO (EIO4 websocket), "
             f"{args.inflight} in flight; latency = send->receive; received {n}/{total}, acked {st['acked']}/{total}, "
             f"errors {st['errors']}; send->ack p50 {ms(percentile(acks, 50))} ms p99 {ms(percentile(acks, 99))} ms; "
             f"wall {result['elapsed']:.2f} s")
    if not done.is_set():
        notes += "; INCOMPLETE (timed out)"
    return line("W1", n=n, throughput=n / result["elapsed"], unit="msgs/s", lat=latency_fields(recv_lat),
                cpu_s=result["cpu"], rss_kb=result["rss"], notes=notes, dialect="sockchat")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.sockchat_load", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--http-url", help="target a running chatd (HTTP port, sockchat enabled)")
    p.add_argument("--pid", type=int, help="pid of the running chatd (for CPU and RSS)")
    p.add_argument("--pairs", type=int, default=50)
    p.add_argument("--messages", type=int, default=100)
    p.add_argument("--inflight", type=int, default=10)
    p.add_argument("--body-pad", type=int, default=0)
    p.add_argument("--workload-timeout", type=float, default=120)
    p.add_argument("--time-limit", type=float, default=1200, help="seconds for the whole invocation")
    args = p.parse_args(argv)
    raise_nofile()
    deadline = time.monotonic() + args.time_limit
    results = []
    status = 0

    def one_run(http_url, pid, run):
        left = deadline - time.monotonic()
        if left <= 0:
            raise BenchError("global time limit reached")
        users = setup_users(http_url, args.pairs, f"{run}x{int(time.time()) % 100000}")

        async def guarded():
            with trio.fail_after(left):
                return await w1(http_url, pid, args, run, users)

        return trio.run(guarded)

    for run in range(1, args.runs + 1):
        log(f"sockchat W1 run {run}/{args.runs}")
        try:
            if args.http_url:
                results.append(one_run(args.http_url.rstrip("/"), args.pid, run))
            else:
                with temp_workdir() as wd:
                    with managed_server(write_config(wd, wd / "data", sockchat=True)) as target:
                        results.append(one_run(target.http_url, target.pid, run))
            emit(results[-1])
        except* (BenchError, OSError, trio.TooSlowError, httpx.HTTPError) as group:
            log(f"sockchat W1 run {run} failed: {group.exceptions!r}")
            status = 1
    if len(results) > 1:
        def med(key):
            values = [x[key] for x in results if x.get(key) is not None]
            return statistics.median(values) if values else None

        emit({"server": "chatd", "dialect": "sockchat", "workload": "W1", "n": med("n"),
              "throughput": med("throughput"), "unit": "msgs/s", "p50_ms": med("p50_ms"), "p95_ms": med("p95_ms"),
              "p99_ms": med("p99_ms"), "server_cpu_s": med("server_cpu_s"), "server_rss_kb": med("server_rss_kb"),
              "notes": f"median of {len(results)} runs", "summary": True})
    return status


if __name__ == "__main__":
    sys.exit(main())
