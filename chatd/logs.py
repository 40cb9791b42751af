"""Logging set-up: human text or one JSON object per line, to stderr (journald keeps it).

One record is one line, whatever it carries: request paths, user names and other client input
reach the logs, so the text format escapes control characters (``\\n``, ``\\r``, ``\\t``,
``\\xNN``, ``\\uNNNN`` for C1 controls and the Unicode line separators, and ``\\\\`` for a
backslash) in the message and in every field, and indents each line of a traceback, so no
input can start a line of its own. The JSON format is escaped by the JSON encoder.
"""

import json
import logging
import re
import sys
import time

_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\\\\]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escape_one(match: re.Match) -> str:
    c = match.group()
    named = _NAMED.get(c)
    if named is not None:
        return named
    code = ord(c)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape(text: str) -> str:
    """`text` on one line: control characters and backslashes escaped."""
    return _UNSAFE.sub(_escape_one, text)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        out.update(getattr(record, "fields", {}))
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        text = self.formatMessage(record)
        fields = getattr(record, "fields", None)
        if fields:
            text += " " + " ".join(f"{escape(str(k))}={escape(str(v))}" for k, v in fields.items())
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for extra in (record.exc_text, record.stack_info and self.formatStack(record.stack_info)):
            if extra:
                # Continuation lines are indented: a log line of its own starts with the time.
                text += "".join("\n  " + escape(line) for line in extra.split("\n"))
        return text


def setup(level: str = "info", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for noisy in ("hypercorn.error", "hypercorn.access", "trio-websocket", "quart.app", "quart.serving"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
