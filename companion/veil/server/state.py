"""Typed keys for what the app factory puts on the application and the handlers read back."""

from __future__ import annotations

from aiohttp import web

from veil.server.backend import CloakBackend
from veil.server.enrol_jobs import EnrolJobs
from veil.server.jobs import CloakJobs
from veil.server.pairing import PairingGate
from veil.server.pool import CloakPool
from veil.server.settings import ServerConfig
from veil.server.spool import Spool
from veil.server.tokens import TokenStore

CONFIG_KEY = web.AppKey("config", ServerConfig)
BACKEND_KEY = web.AppKey("backend", CloakBackend)
POOL_KEY = web.AppKey("pool", CloakPool)
GATE_KEY = web.AppKey("pairing_gate", PairingGate)
TOKENS_KEY = web.AppKey("token_store", TokenStore)
# token_id -> cloak bodies being read right now for that token (event loop only).
BODIES_KEY = web.AppKey("bodies_in_flight", dict[str, int])
ENROL_KEY = web.AppKey("enrol_jobs", EnrolJobs)
JOBS_KEY = web.AppKey("cloak_jobs", CloakJobs)
SPOOL_KEY = web.AppKey("video_spool", Spool)
