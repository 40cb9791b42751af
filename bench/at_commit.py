"""Run the load driver against chatd as of a given git commit, not the (possibly changing) work tree.

    python -m bench.at_commit HEAD -- --workloads W1,W2 --runs 3
    python -m bench.at_commit c66bb9a -- --workloads W3 --runs 3 --py-spy /tmp/prof-before
    python -m bench.at_commit a1a5015 -- sockchat --runs 3        # bench.sockchat_load instead

`git archive <commit> chatd` is unpacked into a temp dir and `python -m chatd` is started there (its
cwd comes first on sys.path, so that copy is what runs), with the driver's generated config (sama and
sockchat enabled, limits opened wide, argon2 "min"). The driver then runs in its external mode
(`--ws-url/--http-url/--pid`): one server for all the runs, and setup through the wire (W3 history
is sent as messages, W4 users are created with user_create + user_login). The group-commit counters
from /metrics over the whole invocation go to stderr. The server is stopped (SIGTERM, then SIGKILL)
and the temp dir removed on the way out, whatever happens; it also dies with this process.
"""

import re
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from .common import (
    REPO,
    BenchError,
    _config_urls,
    _die_with_parent,
    log,
    raise_nofile,
    stop_process,
    write_config,
)

READY_TIMEOUT = 30.0


def store_counters(http_url: str) -> dict[str, float]:
    out = {}
    for row in httpx.get(http_url + "/metrics", timeout=5).text.splitlines():
        m = re.match(r"(chatd_store_commit\w+)\s+([\d.e+-]+)$", row)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def wait_ready(proc: subprocess.Popen, http_url: str, ws_port: int, log_path: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:  # bounded by READY_TIMEOUT
        if proc.poll() is not None:
            raise BenchError(f"chatd exited with {proc.returncode}: {log_path.read_text()[-2000:]}")
        try:
            httpx.get(http_url + "/health", timeout=1)
            with socket.create_connection(("127.0.0.1", ws_port), timeout=1):
                return
        except (httpx.HTTPError, OSError):
            time.sleep(0.1)
    raise BenchError(f"chatd did not listen within {READY_TIMEOUT} s")


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-"):
        print(__doc__, file=sys.stderr)
        return 2
    commit, rest = argv[0], argv[1:]
    if rest[:1] == ["--"]:
        rest = rest[1:]
    raise_nofile()
    work = Path(tempfile.mkdtemp(prefix="chatd-at-commit-"))
    proc = None
    try:
        src = work / "src"
        src.mkdir()
        archive = subprocess.run(["git", "-C", str(REPO), "archive", commit, "chatd"], capture_output=True, check=False)
        if archive.returncode != 0:
            raise BenchError(f"git archive {commit}: {archive.stderr.decode().strip()}")
        subprocess.run(["tar", "-x", "-C", str(src)], input=archive.stdout, check=True)
        config = write_config(work, work / "data", sockchat=True)
        http_url, ws_url = _config_urls(config)
        log_path = work / "server.log"
        with open(log_path, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "chatd", "--config", str(config)], cwd=str(src),
                                    stdout=out, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        wait_ready(proc, http_url, int(ws_url.rsplit(":", 1)[1].strip("/")), log_path)
        log(f"chatd at {commit} (pid {proc.pid}) on {http_url} and {ws_url}")
        before = store_counters(http_url)
        if rest[:1] == ["sockchat"]:
            cmd = [sys.executable, "-m", "bench.sockchat_load", "--http-url", http_url, "--pid", str(proc.pid), *rest[1:]]
        else:
            cmd = [sys.executable, "-m", "bench.driver", "--ws-url", ws_url, "--http-url", http_url,
                   "--pid", str(proc.pid), *rest]
        status = subprocess.run(cmd, cwd=str(REPO), check=False).returncode
        after = store_counters(http_url)
        commits = after.get("chatd_store_commit_seconds_count", 0) - before.get("chatd_store_commit_seconds_count", 0)
        writes = after.get("chatd_store_commit_batch_size_sum", 0) - before.get("chatd_store_commit_batch_size_sum", 0)
        seconds = after.get("chatd_store_commit_seconds_sum", 0) - before.get("chatd_store_commit_seconds_sum", 0)
        log(f"store at {commit} (whole invocation, setup included): {commits:.0f} commits, {writes:.0f} writes, "
            f"mean batch {writes / max(commits, 1):.1f}, mean commit {1000 * seconds / max(commits, 1):.2f} ms")
        return status
    except BenchError as e:
        log(f"at_commit: {e}")
        return 1
    finally:
        if proc is not None:
            stop_process(proc)
        subprocess.run(["rm", "-rf", str(work)], check=False)


if __name__ == "__main__":
    sys.exit(main())
