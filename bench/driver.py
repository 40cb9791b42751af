"""chatd load driver: workloads W1–W4 of shared/bench/WORKLOADS.md over the SAMA dialect.

    python -m bench.driver                          # W1–W4 once each, against a chatd it starts
    python -m bench.driver --workloads W1,W2 --runs 3
    python -m bench.driver --workloads W3 --w3-messages 1000000
    python -m bench.driver --workloads W4 --w4-clients 10000
    python -m bench.driver --http-url http://127.0.0.1:8080 --ws-url ws://127.0.0.1:8081/ --pid 1234

One JSON line per workload run on stdout (then, with --runs > 1, a summary line of medians per
workload marked "summary": true); progress on stderr. See bench/README.md.
"""

import argparse
import os
import secrets
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx
import trio

from . import prefill
from .common import (
    PASSWORD,
    BenchError,
    Client,
    Target,
    create_and_login,
    emit,
    latency_fields,
    line,
    log,
    managed_server,
    open_client,
    proc_cpu_s,
    proc_status,
    raise_nofile,
    rss_kb,
    temp_workdir,
    write_config,
)

perf = time.perf_counter


# -- helpers ------------------------------------------------------------------------------------


async def with_clients(url: str, n: int, setup, body, *, concurrency: int = 50, client_factory=None):
    """Open `n` clients (at most `concurrency` connecting/setting up at once), run `setup(client)`
    on each, then `body(clients)` while all stay connected; close them all afterwards."""
    factory = client_factory or open_client
    clients: list = [None] * n
    limiter = trio.CapacityLimiter(concurrency)
    all_ready = trio.Event()
    finished = trio.Event()
    ready = [0]
    result = []

    async def one(i):
        released = False
        await limiter.acquire_on_behalf_of(i)
        try:
            async with factory(url, i) as c:
                await setup(c)
                limiter.release_on_behalf_of(i)
                released = True
                clients[i] = c
                ready[0] += 1
                if ready[0] == n:
                    all_ready.set()
                await finished.wait()
        finally:
            if not released:
                limiter.release_on_behalf_of(i)

    async with trio.open_nursery() as nursery:
        for i in range(n):
            nursery.start_soon(one, i)
        await all_ready.wait()
        try:
            result.append(await body(clients))
        finally:
            finished.set()
    return result[0]


async def gather(fns, limit: int = 50):
    """Run async callables concurrently, at most `limit` at once."""
    limiter = trio.CapacityLimiter(limit)

    async def run(fn):
        async with limiter:
            await fn()

    async with trio.open_nursery() as nursery:
        for fn in fns:
            nursery.start_soon(run, fn)


class Profiler:
    """py-spy record on the server pid for the timed part (--py-spy DIR)."""

    def __init__(self, args, target: Target, name: str):
        self.proc = None
        if args.py_spy and target.pid:
            out = Path(args.py_spy) / f"{name}.txt"
            out.parent.mkdir(parents=True, exist_ok=True)
            self.proc = subprocess.Popen(
                ["py-spy", "record", "--format", "raw", "--rate", "250", "--nonblocking", "--threads",
                 "-p", str(target.pid), "-o", str(out)],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.5)

    def stop(self):
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()


# -- W1 / W2: messages through the server ----------------------------------------------------------


async def pump(target: Target, args, clients: list[Client], senders: list[Client], per_message: int,
               per_sender: int, name: str, tag: str) -> dict:
    """Each sender sends `per_sender` messages to its conversation (client.extra = cid), at most
    `args.inflight` unacknowledged; wait until every copy is received and every send answered."""
    total = len(senders) * per_sender
    expected = total * per_message
    st = {"received": 0, "acked": 0, "errors": 0, "last": 0.0, "unexpected": 0}
    recv_lat: list[float] = []
    ack_lat: list[float] = []
    sent_at: dict[str, float] = {}
    slots = {c.idx: trio.Semaphore(args.inflight) for c in senders}
    done = trio.Event()

    def check():
        if st["received"] >= expected and st["acked"] + st["errors"] >= total:
            done.set()

    def on_packet(c, packet, now):
        m = packet.get("message")
        if m is not None:
            if "error" in m:
                st["errors"] += 1
                sent_at.pop(m.get("id"), None)
                slots[c.idx].release()
            else:
                body = m.get("body", "")
                if body.startswith("b:"):
                    recv_lat.append(now - float(body[2:].split(" ", 1)[0]))
                    st["received"] += 1
                    st["last"] = now
                else:
                    st["unexpected"] += 1
            check()
            return
        a = packet.get("ack")
        if a is not None:
            t = sent_at.pop(a.get("mid"), None)
            if t is not None:
                ack_lat.append(now - t)
                st["acked"] += 1
                slots[c.idx].release()
                check()

    for c in clients:
        c.on_packet = on_packet
    pad = "p" * args.body_pad

    async def send_loop(c: Client):
        sem = slots[c.idx]
        cid = c.extra
        for i in range(per_sender):
            await sem.acquire()
            mid = f"{tag}-{c.idx}-{i}"
            t = perf()
            sent_at[mid] = t
            await c.send({"message": {"id": mid, "cid": cid, "body": f"b:{t!r} {pad}"}})

    profiler = Profiler(args, target, name)
    commits0 = await store_stats(target)
    cpu0 = proc_cpu_s(target.pid) if target.pid else None
    t0 = perf()
    try:
        with trio.move_on_after(args.workload_timeout):
            async with trio.open_nursery() as nursery:
                for c in senders:
                    nursery.start_soon(send_loop, c)
                await done.wait()
    finally:
        cpu = (proc_cpu_s(target.pid) - cpu0) if cpu0 is not None else None
        profiler.stop()
    commits1 = await store_stats(target)
    if commits0 and commits1:
        c, w, sec = (commits1[k] - commits0[k] for k in ("commits", "writes", "seconds"))
        st["store"] = (f"store: {c} commits, mean batch {w / max(c, 1):.1f} writes, "
                       f"mean commit {1000 * sec / max(c, 1):.2f} ms")
    elapsed = (st["last"] or perf()) - t0
    return {"st": st, "expected": expected, "total": total, "recv_lat": recv_lat, "ack_lat": ack_lat,
            "elapsed": elapsed, "cpu": cpu, "complete": done.is_set()}


async def store_stats(target: Target) -> dict | None:
    """Group-commit counters from GET /metrics (None if unavailable)."""
    if not target.http_url:
        return None
    try:
        async with httpx.AsyncClient() as client:
            text = (await client.get(target.http_url + "/metrics", timeout=5)).text
    except httpx.HTTPError:
        return None
    out = {}
    for row in text.splitlines():
        for key, name in (("commits", "chatd_store_commit_batch_size_count"),
                          ("writes", "chatd_store_commit_batch_size_sum"),
                          ("seconds", "chatd_store_commit_seconds_sum")):
            if row.startswith(name + " "):
                out[key] = float(row.split()[1])
    return out if len(out) == 3 else None


def pump_notes(r: dict, extra: str) -> str:
    st = r["st"]
    acks = sorted(r["ack_lat"])
    from .common import ms, percentile

    notes = (f"{extra}; received {st['received']}/{r['expected']}, acked {st['acked']}/{r['total']}, "
             f"errors {st['errors']}; send->ack p50 {ms(percentile(acks, 50))} ms p99 {ms(percentile(acks, 99))} ms; "
             f"wall {r['elapsed']:.2f} s")
    if st.get("store"):
        notes += "; " + st["store"]
    if not r["complete"]:
        notes += "; INCOMPLETE (timed out)"
    return notes


async def w1(target: Target, args, run: int) -> dict:
    pairs, per = args.w1_pairs, args.w1_messages
    tag = secrets.token_hex(3)

    async def setup(c):
        await create_and_login(c, f"w1{tag}u{c.idx}", f"d{c.idx}")

    async def body(clients):
        async def make(k):
            a, b = clients[2 * k], clients[2 * k + 1]
            r = await a.request("conversation_create", {"type": "u", "participants": [b.user_id]})
            a.extra = b.extra = r["conversation"]["_id"]

        await gather([lambda k=k: make(k) for k in range(pairs)])
        await trio.sleep(0.5)  # let conversation_created packets drain
        return await pump(target, args, clients, clients, 1, per, f"W1-run{run}", tag)

    r = await with_clients(target.ws_url, 2 * pairs, setup, body)
    n = r["st"]["received"]
    return line("W1", n=n, throughput=n / r["elapsed"], unit="msgs/s", lat=latency_fields(r["recv_lat"]),
                cpu_s=r["cpu"], rss_kb=rss_kb(target.pid) if target.pid else None,
                notes=pump_notes(r, f"run {run}; {pairs} pairs x2 users x {per} msgs, {args.inflight} in flight; "
                                    "latency = send->receive"))


async def w2(target: Target, args, run: int) -> dict:
    members, senders_n, per = args.w2_members, args.w2_senders, args.w2_messages
    tag = secrets.token_hex(3)

    async def setup(c):
        await create_and_login(c, f"w2{tag}u{c.idx}", f"d{c.idx}")

    async def body(clients):
        r = await clients[0].request("conversation_create", {
            "type": "g", "name": "fanout", "participants": [c.user_id for c in clients[1:]]})
        cid = r["conversation"]["_id"]
        for c in clients:
            c.extra = cid
        await trio.sleep(1.0)  # let conversation_created packets drain
        return await pump(target, args, clients, clients[:senders_n], members - 1, per, f"W2-run{run}", tag)

    r = await with_clients(target.ws_url, members, setup, body)
    n = r["st"]["received"]
    return line("W2", n=n, throughput=n / r["elapsed"], unit="deliveries/s", lat=latency_fields(r["recv_lat"]),
                cpu_s=r["cpu"], rss_kb=rss_kb(target.pid) if target.pid else None,
                notes=pump_notes(r, f"run {run}; group of {members}, {senders_n} senders x {per} msgs, "
                                    f"{args.inflight} in flight, {members - 1} recipients each; "
                                    "n = deliveries; latency = send->receive"))


# -- W3: history ------------------------------------------------------------------------------------


async def w3(target: Target, args, run: int, info: dict) -> dict:
    users = info["users"]

    async def setup(c):
        u = users[c.idx % len(users)]
        r = await c.request("user_login", {"login": u["login"], "password": info["password"],
                                           "device_id": f"w3dev{run}-{c.idx}"})
        c.user_id = r["user"]["_id"]

    async def body(clients):
        # warm-up + correctness check
        r = await clients[0].request("message_list", {"cid": info["cid"], "limit": 50})
        got = len(r.get("messages", []))
        if got != min(50, info["messages"]):
            raise BenchError(f"message_list returned {got} messages")
        lat: list[float] = []
        profiler = Profiler(args, target, f"W3-run{run}")
        cpu0 = proc_cpu_s(target.pid) if target.pid else None
        t0 = perf()
        deadline = t0 + args.w3_seconds
        max_requests = 10_000_000

        async def loop(c):
            for _ in range(max_requests):  # bounded in count and by the deadline
                if perf() >= deadline:
                    return
                _, dt = await c.request("message_list", {"cid": info["cid"], "limit": 50}, timed=True)
                lat.append(dt)

        with trio.move_on_after(args.w3_seconds + 30):
            async with trio.open_nursery() as nursery:
                for c in clients:
                    nursery.start_soon(loop, c)
        elapsed = perf() - t0
        cpu = (proc_cpu_s(target.pid) - cpu0) if cpu0 is not None else None
        profiler.stop()
        return lat, elapsed, cpu

    lat, elapsed, cpu = await with_clients(target.ws_url, args.w3_clients, setup, body)
    return line("W3", n=len(lat), throughput=len(lat) / elapsed, unit="req/s", lat=latency_fields(lat), cpu_s=cpu,
                rss_kb=rss_kb(target.pid) if target.pid else None,
                notes=(f"run {run}; {info['messages']} messages in one conversation (prefill {info['prefill_s']} s); "
                       f"{args.w3_clients} clients x message_list limit 50 for {elapsed:.1f} s; latency = request->response"))


# -- W4: idle connections ------------------------------------------------------------------------------


async def w4(target: Target, args, run: int, info: dict) -> dict:
    tokens = info["tokens"]
    n = args.w4_clients
    probe_token = tokens[n]

    async def setup(c):
        uid, token, device = tokens[c.idx]
        await c.request("connect", {"token": token, "device_id": device})
        c.user_id = uid

    async with open_client(target.ws_url, n) as probe:
        await probe.request("connect", {"token": probe_token[1], "device_id": probe_token[2]})
        for _ in range(20):
            await probe.request("ping", {})
        await trio.sleep(0.5)
        before = proc_status(target.pid) if target.pid else {}
        started = perf()

        async def body(clients):
            connect_s = perf() - started
            await trio.sleep(1.0)
            after = proc_status(target.pid) if target.pid else {}
            cpu0 = proc_cpu_s(target.pid) if target.pid else None
            lat = []
            for _ in range(args.w4_pings):
                _, dt = await probe.request("ping", {}, timed=True)
                lat.append(dt)
            cpu = (proc_cpu_s(target.pid) - cpu0) if cpu0 is not None else None
            return after, lat, cpu, connect_s

        after, lat, cpu, connect_s = await with_clients(target.ws_url, n, setup, body, concurrency=args.w4_concurrency)
    kb = ((after.get("VmRSS", 0) - before.get("VmRSS", 0)) / n) if before else None
    anon = ((after.get("RssAnon", 0) - before.get("RssAnon", 0)) / n) if before else None
    return line("W4", n=n, throughput=kb, unit="KB/conn", lat=latency_fields(lat), cpu_s=cpu,
                rss_kb=after.get("VmRSS"),
                notes=(f"run {run}; {n} idle logged-in clients (connect with a token); VmRSS before {before.get('VmRSS')} KB, "
                       f"after {after.get('VmRSS')} KB; RssAnon/conn {anon if anon is None else round(anon, 2)} KB; "
                       f"connect+login of all took {connect_s:.1f} s; latency = {args.w4_pings} sequential pings from one "
                       "more client; throughput = server KB per connection (VmRSS delta / n)"))


# -- setup through the wire (when the server is not ours) ----------------------------------------------


async def ws_history(target: Target, count: int) -> dict:
    tag = secrets.token_hex(3)
    async with open_client(target.ws_url) as a, open_client(target.ws_url) as b:
        await create_and_login(a, f"w3{tag}a", "d0")
        await create_and_login(b, f"w3{tag}b", "d0")
        r = await a.request("conversation_create", {"type": "u", "participants": [b.user_id]})
        cid = r["conversation"]["_id"]
        slots = trio.Semaphore(200)
        acked = [0]
        done = trio.Event()

        def on_packet(c, packet, now):
            if "ack" in packet or ("message" in packet and "error" in packet["message"]):
                slots.release()
                acked[0] += 1
                if acked[0] >= count:
                    done.set()

        a.on_packet = on_packet
        started = perf()
        for i in range(count):
            await slots.acquire()
            await a.send({"message": {"id": f"h{i}", "cid": cid, "body": f"history {i} " + "x" * 80}})
        with trio.fail_after(600):
            await done.wait()
        return {"users": [{"login": a.login}, {"login": b.login}], "password": PASSWORD, "cid": cid,
                "messages": count, "prefill_s": round(perf() - started, 2)}


async def ws_users(target: Target, count: int) -> dict:
    tag = secrets.token_hex(3)
    tokens: list = [None] * count
    numbers = iter(range(count))

    async def worker(k):
        async with open_client(target.ws_url, k) as c:
            for i in numbers:  # shared iterator: bounded by `count`
                await create_and_login(c, f"w4{tag}u{i}", f"dev{i}")
                tokens[i] = [c.user_id, c.token, f"dev{i}"]

    started = perf()
    async with trio.open_nursery() as nursery:
        for k in range(16):
            nursery.start_soon(worker, k)
    return {"tokens": tokens, "prefill_s": round(perf() - started, 2)}


# -- main ------------------------------------------------------------------------------------------------


def summarize(workload: str, lines: list[dict]) -> dict:
    def med(key):
        values = [x[key] for x in lines if x.get(key) is not None]
        return statistics.median(values) if values else None

    first = lines[0]
    return {"server": "chatd", "dialect": first["dialect"], "workload": workload, "n": med("n"),
            "throughput": med("throughput"), "unit": first["unit"], "p50_ms": med("p50_ms"),
            "p95_ms": med("p95_ms"), "p99_ms": med("p99_ms"), "server_cpu_s": med("server_cpu_s"),
            "server_rss_kb": med("server_rss_kb"),
            "notes": f"median of {len(lines)} runs; " + first["notes"].split("; ")[1], "summary": True}


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.driver", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--workloads", default="W1,W2,W3,W4")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--http-url", help="target a running chatd (HTTP port), e.g. http://127.0.0.1:8080")
    p.add_argument("--ws-url", help="target a running chatd (SAMA WebSocket), e.g. ws://127.0.0.1:8081/")
    p.add_argument("--pid", type=int, help="pid of the running chatd (for CPU and RSS)")
    p.add_argument("--time-limit", type=float, default=3600, help="seconds for the whole invocation")
    p.add_argument("--workload-timeout", type=float, default=120, help="seconds for one timed part of W1/W2")
    p.add_argument("--inflight", type=int, default=10)
    p.add_argument("--body-pad", type=int, default=0, help="extra characters in each message body")
    p.add_argument("--w1-pairs", type=int, default=50)
    p.add_argument("--w1-messages", type=int, default=100)
    p.add_argument("--w2-members", type=int, default=100)
    p.add_argument("--w2-senders", type=int, default=10)
    p.add_argument("--w2-messages", type=int, default=100)
    p.add_argument("--w3-messages", type=int, default=10_000)
    p.add_argument("--w3-clients", type=int, default=20)
    p.add_argument("--w3-seconds", type=float, default=15.0)
    p.add_argument("--w4-clients", type=int, default=1000)
    p.add_argument("--w4-pings", type=int, default=200)
    p.add_argument("--w4-concurrency", type=int, default=64)
    p.add_argument("--py-spy", metavar="DIR", help="record the server with py-spy (raw format) during W1/W2/W3")
    p.add_argument("--keep", action="store_true", help="keep the temp directories (config, data, server.log)")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    nofile = raise_nofile()
    deadline = time.monotonic() + args.time_limit
    workloads = [w.strip().upper() for w in args.workloads.split(",") if w.strip()]
    external = bool(args.ws_url)
    if "W4" in workloads and args.w4_clients + 200 > nofile:
        log(f"open-files limit {nofile} is too low for {args.w4_clients} clients; lowering")
        args.w4_clients = max(1, nofile - 200)

    def remaining() -> float:
        left = deadline - time.monotonic()
        if left <= 0:
            raise BenchError("global time limit reached")
        return left

    def timed_run(fn, *a):
        async def guarded():
            with trio.fail_after(remaining()):
                return await fn(*a)

        return trio.run(guarded)

    external_target = Target(args.http_url or "", args.ws_url, args.pid) if external else None
    if external_target and args.http_url:
        httpx.get(args.http_url + "/health", timeout=5)
    status = 0
    speed = machine_speed()
    log(f"machine speed: a 10M-step Python loop takes {speed:.2f} s")
    for workload in workloads:
        results = []
        with temp_workdir(args.keep) as wd:
            info = None
            config_path = None
            if not external:
                config_path = write_config(wd, wd / "data")
                if workload == "W3":
                    info = prefill.history(config_path, wd / "w3.json", args.w3_messages)
                elif workload == "W4":
                    info = prefill.users(config_path, wd / "w4.json", args.w4_clients + 1)
            elif workload == "W3":
                info = timed_run(ws_history, external_target, args.w3_messages)
            elif workload == "W4":
                info = timed_run(ws_users, external_target, args.w4_clients + 1)
            for run in range(1, args.runs + 1):
                remaining()
                log(f"{workload} run {run}/{args.runs}")
                cpu_before = _driver_cpu()
                load_before = os.getloadavg()[0]
                try:
                    if external:
                        results.append(_one(workload, external_target, args, run, info, timed_run))
                    else:
                        with managed_server(config_path) as target:
                            results.append(_one(workload, target, args, run, info, timed_run))
                    r = results[-1]
                    if r["workload"] != "W4" and r["server_cpu_s"]:
                        r["notes"] += f"; {r['n'] / r['server_cpu_s']:.0f} per server CPU-second"
                    r["notes"] += f"; loadavg(1m) before {load_before:.2f}; 10M-step loop {speed:.2f} s"
                    results[-1]["notes"] += f"; driver cpu (whole run incl. setup) {_driver_cpu() - cpu_before:.2f} s"
                    emit(results[-1])
                except* (BenchError, OSError, trio.TooSlowError) as group:
                    log(f"{workload} run {run} failed: {group.exceptions!r}")
                    status = 1
        if len(results) > 1:
            emit(summarize(workload, results))
    return status


def machine_speed() -> float:
    """Seconds for a fixed pure-Python loop (best of 3): compare runs from different machines of
    the same nominal class, whose per-core speed can differ by 2x."""
    best = float("inf")
    for _ in range(3):
        t = time.perf_counter()
        x = 0
        for i in range(10_000_000):
            x += i
        best = min(best, time.perf_counter() - t)
    return best


def _driver_cpu() -> float:
    t = os.times()
    return t.user + t.system


def _one(workload, target, args, run, info, timed_run):
    if workload == "W1":
        return timed_run(w1, target, args, run)
    if workload == "W2":
        return timed_run(w2, target, args, run)
    if workload == "W3":
        return timed_run(w3, target, args, run, info)
    if workload == "W4":
        return timed_run(w4, target, args, run, info)
    raise BenchError(f"unknown workload {workload}")


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        sys.exit(130)
    except BenchError as e:
        print(f"bench: {e}", file=sys.stderr)
        sys.exit(1)
