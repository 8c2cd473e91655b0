"""Access log lines that can never carry a token or photo: method, path, status, size, time.

aiohttp's default format logs the request line (with its query string), the Referer and the
User-Agent; ours logs no headers and no query string at all.
"""

from __future__ import annotations

from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse


class PrivateAccessLogger(AbstractAccessLogger):
    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        self.logger.info(
            "%s %s %d %d bytes %.3f s",
            request.method,
            request.path,
            response.status,
            response.body_length,
            time,
        )
