"""Shared fixtures: a real chatd server on 127.0.0.1 (any free ports), a temp data dir, real clients.

- `config(tmp_path)`: `make_config(tmp_path)` (see tests/helpers); override sections per test with
  `@pytest.mark.config(limits={"outbound_queue": 8})`.
- `server(nursery, config)`: a running `chatd.server.Server`, with `http_url` and `ws_url`.
- `http(server)`: an `httpx.AsyncClient` with `base_url=server.http_url`.

Every async test runs under a deadline (the whole trio.run: fixtures and test):
`DEFAULT_DEADLINE` seconds, or `@pytest.mark.deadline(seconds)`.
"""

from inspect import iscoroutinefunction

import httpx
import pytest
import trio

from tests.helpers import make_config

DEFAULT_DEADLINE = 20.0


def _run_with_deadline(seconds: float):
    def run(fn, *args, **run_kwargs):
        async def bounded():
            with trio.move_on_after(seconds) as scope:
                try:
                    return await fn(*args)
                except BaseException as e:
                    if scope.cancel_called:
                        raise trio.TooSlowError(f"the test ran past its {seconds} s deadline") from e
                    raise
            raise trio.TooSlowError(f"the test ran past its {seconds} s deadline")

        return trio.run(bounded, **run_kwargs)

    return run


def pytest_configure(config):
    config.addinivalue_line("markers", "deadline(seconds): time limit for one async test (default 20 s)")
    config.addinivalue_line("markers", "config(**sections): overrides for the `config` fixture, as for make_config")


def pytest_collection_modifyitems(config, items):
    for item in items:
        func = getattr(item, "obj", None)
        if not iscoroutinefunction(func):
            continue
        marker = item.get_closest_marker("deadline")
        seconds = marker.args[0] if marker else DEFAULT_DEADLINE
        # pytest-trio takes the `run` of the first `trio` marker it finds: ours, prepended.
        item.add_marker(pytest.mark.trio(run=_run_with_deadline(seconds)), append=False)


@pytest.fixture
def config(tmp_path, request):
    """`make_config(tmp_path)`, with overrides from `@pytest.mark.config(limits={...}, ...)` if any."""
    marker = request.node.get_closest_marker("config")
    return make_config(tmp_path, **(marker.kwargs if marker else {}))


@pytest.fixture
async def server(nursery, config):
    # Imported here so that tests not needing a server still run while chatd/ is mid-edit.
    from chatd.server import Server

    srv = Server(config)
    stopped = trio.Event()

    async def run(task_status=trio.TASK_STATUS_IGNORED):
        try:
            await srv.run(task_status=task_status)
        finally:
            stopped.set()

    listening = await nursery.start(run)
    srv.http_url = f"http://127.0.0.1:{listening.http_port}"
    srv.ws_url = f"ws://127.0.0.1:{listening.gateway_port}"
    try:
        yield srv
    finally:
        srv.stop()
        # Server.run closes WebSockets, waits up to 1.5 s for them, cancels the rest,
        # flushes the writer and closes LMDB; bound it so a bug shows as a failure, not a hang.
        with trio.CancelScope(shield=True), trio.move_on_after(10) as scope:
            await stopped.wait()
        if scope.cancelled_caught:
            pytest.fail("chatd.server.Server.run did not return within 10 s of stop()")


@pytest.fixture
async def http(server):
    async with httpx.AsyncClient(base_url=server.http_url) as client:
        yield client

