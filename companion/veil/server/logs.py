"""The companion's log: nothing secret and nothing unbounded.

- Redaction: every formatted line (tracebacks included) has bearer tokens, `veil_...`
  tokens and Authorization values replaced. aiohttp's parser errors quote the offending
  header line (a header with a control character, or one over 8 KB), which is how the
  token reached stderr; those errors are also logged as one line without the traceback.
- Bounds: one line is at most MAX_LINE characters, and each message template is logged at
  most BURST times per WINDOW_S seconds; the rest are counted and reported once (a flood of
  half-open sockets made asyncio log accept() errors at 2 MB/s).
"""

from __future__ import annotations

import logging
import re
import sys
import time
from typing import TextIO

from aiohttp.http_exceptions import HttpProcessingError

MAX_LINE = 4000
BURST = 20
WINDOW_S = 10.0
# The access log has one template for every request: give it room for real traffic (20
# lines a second) while a flood is still cut to a bounded rate.
BURSTS = {"veil.access": 200}

_SECRETS = (
    (re.compile(r"veil_[A-Za-z0-9_\-]*"), "veil_[redacted]"),
    (re.compile(r"(?i)(bearer)(\s+|%20)[^\s'\"\\,;]+"), r"\1 [redacted]"),
    (re.compile(r"(?i)(authorization['\"]?\s*[:=,]\s*['\"]?)[^\r\n'\"]*"), r"\1[redacted]"),
)


def redact(text: str) -> str:
    for pattern, replacement in _SECRETS:
        text = pattern.sub(replacement, text)
    return text


class SafeFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, HttpProcessingError):
            # A malformed request: say so in one line; its text may quote any header.
            record = logging.makeLogRecord(record.__dict__)
            record.msg = f"bad HTTP request refused by the parser ({type(exc).__name__})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        text = redact(super().format(record))
        if len(text) > MAX_LINE:
            text = text[:MAX_LINE] + f"... [{len(text) - MAX_LINE} characters cut]"
        return text


class RateLimitFilter(logging.Filter):
    """At most BURST records per message template per WINDOW_S; then a count."""

    def __init__(self, burst: int = BURST, window_s: float = WINDOW_S) -> None:
        super().__init__()
        self.burst, self.window_s = burst, window_s
        self._windows: dict[tuple[str, str], tuple[float, int, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = (record.name, str(record.msg)[:200])
        now = time.monotonic()
        start, passed, dropped = self._windows.get(key, (now, 0, 0))
        if now - start >= self.window_s:
            if dropped:
                record.msg = f"{record.msg} [{dropped} similar lines suppressed]"
            start, passed, dropped = now, 0, 0
        if passed >= BURSTS.get(record.name, self.burst):
            self._windows[key] = (start, passed, dropped + 1)
            return False
        self._windows[key] = (start, passed + 1, dropped)
        if len(self._windows) > 1000:  # templates are few; never let the table grow
            self._windows.clear()
        return True


def configure_logging(stream: TextIO = sys.stderr, level: int = logging.INFO) -> None:
    """Route every logger (aiohttp's and asyncio's included) through one safe handler."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(SafeFormatter("%(asctime)s %(name)s %(message)s"))
    handler.addFilter(RateLimitFilter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
