"""The companion's log formatter and limiter, in-process (veil.server.logs)."""

from __future__ import annotations

import io
import logging

from aiohttp.http_exceptions import LineTooLong

from veil.server.logs import MAX_LINE, RateLimitFilter, SafeFormatter, redact

TOKEN = "veil_Jq0v9m0dQ8Zc1kq4cW0v3kVQ0b0e7Xo0gW1Yy2cH5sE"


def _record(
    msg: str, *, name: str = "aiohttp.server", exc: BaseException | None = None
) -> logging.LogRecord:
    return logging.LogRecord(
        name, logging.ERROR, __file__, 1, msg, None, (type(exc), exc, None) if exc else None
    )


def test_tokens_and_authorization_values_are_redacted() -> None:
    text = redact(f"b'Authorization: Bearer {TOKEN}\\x01' and {TOKEN[:12]} Bearer abc.def")
    assert TOKEN[5:] not in text and TOKEN[5:12] not in text and "abc.def" not in text


def test_parser_errors_are_one_line_without_the_header() -> None:
    exc = LineTooLong(f"Authorization: Bearer {TOKEN}".encode(), "8190")
    line = SafeFormatter().format(_record("Error handling request from %s", exc=exc))
    assert "\n" not in line and TOKEN[5:] not in line
    assert "bad HTTP request" in line


def test_long_lines_are_cut() -> None:
    line = SafeFormatter().format(_record("x" * 50_000, name="veil.server"))
    assert len(line) < MAX_LINE + 100


def test_a_flood_of_one_message_is_cut_to_a_count() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RateLimitFilter(burst=5, window_s=3600))
    logger = logging.getLogger("veil.test.flood")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        for _ in range(10_000):
            logger.error("socket.accept() out of system resource")
    finally:
        logger.removeHandler(handler)
    assert stream.getvalue().count("\n") == 5
