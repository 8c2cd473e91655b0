"""Connection limits: a cap on open connections, with idle ones closed first.

aiohttp closes a connection that has not sent a whole request head within its keep-alive
time-out (`idle_timeout_s`, set by the runner) but has no cap on how many are open: 1,100
idle sockets exhausted the process's file descriptors, health stopped answering and asyncio
logged accept() errors in a loop. Past `max_connections` the guard closes the oldest
connection that has no request in a handler (idle, or still sending its head), so a fresh
client such as `/v1/health` always gets in; only when every connection is busy in a handler
is the newcomer closed instead. Busy handlers are bounded by the pool and body limits.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler
from aiohttp.web_protocol import RequestHandler

log = logging.getLogger("veil.server")


class ConnectionGuard:
    def __init__(self, max_connections: int) -> None:
        self.max_connections = max_connections
        self._open: OrderedDict[RequestHandler, Any] = OrderedDict()
        self._busy: set[RequestHandler] = set()
        self.evicted = 0

    @property
    def open_count(self) -> int:
        return len(self._open)

    def install(self, server: web.Server) -> None:
        """Hook the low-level server's connection bookkeeping (aiohttp calls these on the
        event loop for every connection made and lost)."""
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: RequestHandler, transport: Any) -> None:
            made(handler, transport)
            self._opened(handler, transport)

        def connection_lost(handler: RequestHandler, exc: BaseException | None = None) -> None:
            self._open.pop(handler, None)
            self._busy.discard(handler)
            lost(handler, exc)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    def _opened(self, handler: RequestHandler, transport: Any) -> None:
        self._open[handler] = transport
        if len(self._open) <= self.max_connections:
            return
        victim = next((h for h in self._open if h not in self._busy and h is not handler), None)
        if victim is None:
            victim = handler  # everything is working: the newcomer waits outside
        self.evicted += 1
        log.warning(
            "connection limit (%d) reached: closing an idle connection", self.max_connections
        )
        self._open.pop(victim).close()

    @web.middleware
    async def middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        protocol = request.protocol
        if not isinstance(protocol, RequestHandler):
            return await handler(request)
        self._busy.add(protocol)
        try:
            return await handler(request)
        finally:
            self._busy.discard(protocol)


GUARD_KEY = web.AppKey("connection_guard", ConnectionGuard)
