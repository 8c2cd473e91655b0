"""`create_app`: the application factory (no module-level app; every test gets its own)."""

from __future__ import annotations

import time
from collections.abc import Callable

from aiohttp import web

from veil.server import handlers
from veil.server.backend import CloakBackend
from veil.server.connections import GUARD_KEY, ConnectionGuard
from veil.server.error_responses import error_middleware
from veil.server.guard import ALLOW_REMOTE_KEY, add_response_headers, guard_middleware
from veil.server.pairing import PairingGate
from veil.server.pool import CloakPool
from veil.server.settings import ServerConfig
from veil.server.state import (
    BACKEND_KEY,
    BODIES_KEY,
    CONFIG_KEY,
    GATE_KEY,
    POOL_KEY,
    TOKENS_KEY,
)
from veil.server.tokens import TokenStore, open_token_store


def create_app(
    config: ServerConfig,
    backend: CloakBackend,
    *,
    token_store: TokenStore | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """The companion's aiohttp application, for `veil serve` and tests.

    `backend` is the loaded engine (loading is the caller's job: once, at start-up). `clock`
    (Unix seconds) times pairing codes and the pairing lock; tests pass one they advance.
    """
    connection_guard = ConnectionGuard(config.max_connections)
    app = web.Application(
        # The connection guard marks connections busy for the whole request; errors next, so
        # guard refusals become JSON too.
        middlewares=[connection_guard.middleware, error_middleware, guard_middleware],
        # Backstop for any `request.read()`; the cloak handler streams with its own cap.
        client_max_size=config.max_body_bytes + 1,
    )
    app[CONFIG_KEY] = config
    app[GUARD_KEY] = connection_guard  # the runner installs it on the listening server
    app[BACKEND_KEY] = backend
    app[ALLOW_REMOTE_KEY] = config.allow_remote
    app[TOKENS_KEY] = token_store or open_token_store(config.config_dir)
    app[GATE_KEY] = PairingGate(
        config.config_dir,
        max_failures=config.pairing_max_failures,
        lock_s=config.pairing_lock_s,
        clock=clock,
    )
    pool = CloakPool(
        workers=config.workers, queue=config.queue, memory_budget=config.memory_budget_bytes
    )
    app[POOL_KEY] = pool
    app[BODIES_KEY] = {}

    async def stop_pool(_app: web.Application) -> None:
        pool.shutdown()

    app.on_cleanup.append(stop_pool)
    app.on_response_prepare.append(add_response_headers)
    app.router.add_get("/v1/health", handlers.health)
    app.router.add_post("/v1/pair", handlers.pair)
    app.router.add_get("/v1/token", handlers.token_info)
    app.router.add_post("/v1/unpair", handlers.unpair)
    app.router.add_post("/v1/cloak", handlers.cloak, expect_handler=handlers.expect_cloak_body)
    return app
