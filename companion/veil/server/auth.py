"""Bearer-token check for every authenticated endpoint."""

from __future__ import annotations

import asyncio

from aiohttp import web

from veil.server.http_errors import ForbiddenOriginError, UnauthorizedError
from veil.server.tokens import TokenRecord, TokenStore, find_token


async def authenticate(request: web.Request, store: TokenStore) -> TokenRecord:
    """The caller's token record; 401 when missing, unknown or revoked, 403 from another origin.

    The store is read in a worker thread: a keyring read can block (see veil.server.tokens).
    """
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise UnauthorizedError(
            "Missing token: pair the extension with the companion (`veil pair`)."
        )
    record = await asyncio.to_thread(find_token, store, token)
    if record is None:
        raise UnauthorizedError(
            "The token is unknown or was revoked: pair the extension again (`veil pair`)."
        )
    origin = request.headers.get("Origin")
    if origin is not None and record.origin is not None and origin != record.origin:
        raise ForbiddenOriginError("This token was paired from another extension origin.")
    return record
