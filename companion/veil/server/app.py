"""`create_app`: the application factory (no module-level app; every test gets its own)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable

from aiohttp import web

from veil.server import enrol_handlers, handlers
from veil.server.backend import CloakBackend, EnrolBackend
from veil.server.connections import GUARD_KEY, ConnectionGuard
from veil.server.enrol_jobs import EnrolJobs
from veil.server.error_responses import error_middleware
from veil.server.guard import ALLOW_REMOTE_KEY, add_response_headers, guard_middleware
from veil.server.jobs import CloakJobs
from veil.server.pairing import PairingGate
from veil.server.pool import CloakPool
from veil.server.settings import ServerConfig
from veil.server.spool import Spool
from veil.server.state import (
    BACKEND_KEY,
    BODIES_KEY,
    CONFIG_KEY,
    ENROL_KEY,
    GATE_KEY,
    JOBS_KEY,
    POOL_KEY,
    SPOOL_KEY,
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
    app[ENROL_KEY] = _enrol_jobs(config, backend, clock)
    app[JOBS_KEY] = CloakJobs()
    # Video bodies and outputs go to private files; opening the spool deletes what a
    # process killed with kill -9 left there (veil.server.spool).
    spool = Spool(config.video_spool_dir)
    app[SPOOL_KEY] = spool

    async def stop_pool(_app: web.Application) -> None:
        pool.shutdown()
        spool.close()

    app.on_cleanup.append(stop_pool)
    app.cleanup_ctx.append(_sweep_enrol_jobs)
    app.on_response_prepare.append(add_response_headers)
    app.router.add_get("/v1/health", handlers.health)
    app.router.add_post("/v1/pair", handlers.pair)
    app.router.add_get("/v1/token", handlers.token_info)
    app.router.add_post("/v1/unpair", handlers.unpair)
    app.router.add_post("/v1/cloak", handlers.cloak, expect_handler=handlers.expect_cloak_body)
    app.router.add_get("/v1/jobs/{job}", handlers.job_status)
    app.router.add_delete("/v1/jobs/{job}", handlers.cancel_job)
    app.router.add_get("/v1/profiles", enrol_handlers.list_profiles)
    app.router.add_patch("/v1/profiles/{profile}", enrol_handlers.patch_profile)
    app.router.add_delete("/v1/profiles/{profile}", enrol_handlers.delete_profile)
    app.router.add_post("/v1/enrol", enrol_handlers.start_enrolment)
    app.router.add_get("/v1/enrol/{job}", enrol_handlers.enrolment_status)
    app.router.add_delete("/v1/enrol/{job}", enrol_handlers.cancel_enrolment)
    app.router.add_post("/v1/enrol/{job}/save", enrol_handlers.save_enrolment)
    return app


ENROL_SWEEP_S = 60.0


def _enrol_jobs(
    config: ServerConfig, backend: CloakBackend, clock: Callable[[], float]
) -> EnrolJobs:
    """The enrolment jobs, when the backend can enrol (the real engine can; test stand-ins
    that only cloak cannot, and the enrolment paths then answer 404)."""
    from veil.personal import EnrolPlan

    plan = EnrolPlan(steps=config.enrol_steps) if config.enrol_steps else None
    enrol = backend if isinstance(backend, EnrolBackend) else None
    return EnrolJobs(enrol, plan=plan, ttl_s=config.enrol_job_ttl_s, clock=clock)


async def _sweep_enrol_jobs(app: web.Application) -> AsyncIterator[None]:
    """Drop expired enrolment jobs from memory every minute, even if nobody asks; stop the
    running one when the server stops."""
    jobs = app[ENROL_KEY]

    async def sweep() -> None:
        while True:
            await asyncio.sleep(ENROL_SWEEP_S)
            jobs.sweep()

    task = asyncio.create_task(sweep())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    jobs.shutdown()
