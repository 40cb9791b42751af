"""Log lines cannot be forged: control characters from clients are escaped in every field."""

import io
import json
import logging

import pytest

from chatd.logs import JsonFormatter, TextFormatter


@pytest.fixture
def access_lines():
    """What the `chatd.access` logger writes, formatted as text and as JSON."""
    text, js = io.StringIO(), io.StringIO()
    handlers = []
    for stream, formatter in ((text, TextFormatter()), (js, JsonFormatter())):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(formatter)
        handlers.append(handler)
    logger = logging.getLogger("chatd.access")
    level = logger.level
    logger.setLevel(logging.INFO)
    for handler in handlers:
        logger.addHandler(handler)
    try:
        yield lambda: (text.getvalue().splitlines(), js.getvalue().splitlines())
    finally:
        for handler in handlers:
            logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.mark.config(log={"access_log": True})
async def test_request_path_cannot_forge_access_log_lines(server, http, access_lines):
    forged = "2030-01-01 00:00:00,000 INFO chatd.access: GET /admin 200"
    r = await http.get("/nowhere%0A" + forged.replace(" ", "%20") + "%0D%00end%E2%80%A8x")
    assert r.status_code == 404
    text, js = access_lines()
    assert len(text) == 1, text
    line = text[0]
    assert "\x00" not in line and "\r" not in line and "\u2028" not in line
    assert "/nowhere\\n2030-01-01" in line and "\\r\\x00end\\u2028x 404" in line
    assert len(js) == 1, js
    record = json.loads(js[0])
    assert record["msg"] == f"GET /nowhere\n{forged}\r\x00end\u2028x 404"


def test_text_formatter_escapes_message_arguments_fields_and_tracebacks():
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(TextFormatter())
    logger = logging.getLogger("chatd.test_logs")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("user %s\nsaid", "a\nb\x1b[31m", extra={"fields": {"name\n": "x\ty\\z"}})
        try:
            raise ValueError("bad\nINFO forged line")
        except ValueError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    lines = out.getvalue().splitlines()
    assert lines[0].endswith("user a\\nb\\x1b[31m\\nsaid name\\n=x\\ty\\\\z")
    assert lines[1].endswith("failed")
    # Traceback lines are continuation lines: indented, never at the start of a line.
    assert len(lines) > 3 and all(line.startswith("  ") for line in lines[2:])
    assert "  INFO forged line" in lines


def test_escape():
    from chatd.logs import escape

    assert escape("plain text / é ✓") == "plain text / é ✓"
    assert escape("a\r\n\t\x00\x7f\x85\u2028\\") == "a\\r\\n\\t\\x00\\x7f\\x85\\u2028\\\\"
