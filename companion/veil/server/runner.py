"""Binding and serving: loopback-only unless asked, a private access log, clean shutdown."""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import signal
from collections.abc import Callable

from aiohttp import web

from veil.server.accesslog import PrivateAccessLogger
from veil.server.app import create_app
from veil.server.backend import CloakBackend
from veil.server.connections import GUARD_KEY
from veil.server.settings import ServerConfig
from veil.server.tokens import TokenStore

log = logging.getLogger("veil.server")


class BindError(Exception):
    """The address cannot or may not be bound; the message says what to do."""


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind_address(host: str, *, allow_remote: bool) -> None:
    """Refuse a non-loopback address unless `allow_remote` (the one place this is decided)."""
    if not allow_remote and not is_loopback(host):
        raise BindError(
            f"refusing to listen on {host}: it is not a loopback address, so other "
            "machines could send photos to this companion. Use --allow-remote to do it anyway."
        )


async def serve(
    config: ServerConfig,
    backend: CloakBackend,
    *,
    announce: Callable[[str], None] = print,
    token_store: TokenStore | None = None,
) -> None:
    """Serve until SIGINT/SIGTERM; photos already being cloaked are finished first."""
    check_bind_address(config.host, allow_remote=config.allow_remote)
    app = create_app(config, backend, token_store=token_store)
    runner = web.AppRunner(
        app,
        access_log_class=PrivateAccessLogger,
        access_log=logging.getLogger("veil.access"),
        handle_signals=False,
        # Also the time a new connection has to send its request head (aiohttp starts
        # this timer when the connection opens): idle and slow-head sockets are closed.
        keepalive_timeout=config.idle_timeout_s,
    )
    await runner.setup()
    assert runner.server is not None
    app[GUARD_KEY].install(runner.server)
    try:
        site = web.TCPSite(runner, config.host, config.port)
        try:
            await site.start()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise BindError(
                    f"port {config.port} on {config.host} is already in use (another "
                    "`veil serve`? `veil doctor` tells); choose another with --port"
                ) from exc
            raise BindError(f"cannot listen on {config.host}:{config.port}: {exc}") from exc
        for address in runner.addresses:
            host, port = str(address[0]), int(address[1])
            shown = f"[{host}]" if ":" in host else host
            announce(f"veil serve: listening on http://{shown}:{port}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()
        log.info("shutting down")
    finally:
        await runner.cleanup()
