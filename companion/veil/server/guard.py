"""Who may talk to the companion at all: Host (DNS rebinding), Origin (web pages), CORS.

Runs before any handler and before any body is read. A localhost port is reachable from
every web page the user opens, so only extension origins get in and only loopback names are
accepted in Host (a rebinding attack uses its own host name).
"""

from __future__ import annotations

import ipaddress

from aiohttp import web
from aiohttp.typedefs import Handler

from veil.server.http_errors import ForbiddenHostError, ForbiddenOriginError

EXTENSION_SCHEMES = ("chrome-extension://", "moz-extension://")
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
EXPOSED_HEADERS = (
    "X-Veil-Faces, X-Veil-Face-Boxes, X-Veil-Seconds, X-Veil-SSIM, X-Veil-Metadata-Removed, "
    "Retry-After, X-Veil-Face-SSIMULACRA2, X-Veil-Face-Profiles, X-Veil-Face-Frames"
)
ALLOWED_METHODS = "GET, POST, PATCH, DELETE, OPTIONS"
ALLOWED_HEADERS = "Authorization, Content-Type, X-Veil-Job"
PREFLIGHT_MAX_AGE_S = 600

ALLOW_REMOTE_KEY = web.AppKey("allow_remote", bool)


def is_extension_origin(origin: str) -> bool:
    scheme, separator, extension_id = origin.partition("://")
    return (
        bool(separator)
        and f"{scheme}://" in EXTENSION_SCHEMES
        and extension_id.replace("-", "").isalnum()
    )


def _local_address(request: web.Request) -> tuple[str, int]:
    sockname = request.transport.get_extra_info("sockname") if request.transport else None
    if not sockname:
        return "", -1
    return str(sockname[0]), int(sockname[1])


def allowed_hosts(request: web.Request, *, allow_remote: bool) -> set[str]:
    """Host header values accepted for the socket this request arrived on."""
    address, port = _local_address(request)
    names = {f"{name}:{port}" for name in LOOPBACK_NAMES}
    if port == 80:  # browsers omit the default port
        names.update(LOOPBACK_NAMES)
    if allow_remote and address:
        # The literal address the client connected to (a LAN IP); never a DNS name.
        literal = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
        names.add(f"{literal}:{port}")
    return names


def check_host(request: web.Request, *, allow_remote: bool) -> None:
    host = request.headers.get("Host", "").strip().lower()
    if host not in allowed_hosts(request, allow_remote=allow_remote):
        # Do not echo the Host value: it is attacker-chosen.
        raise ForbiddenHostError(
            "Host not allowed: use 127.0.0.1, localhost or [::1] with the companion's port."
        )


def check_origin(request: web.Request) -> None:
    origin = request.headers.get("Origin")
    if origin is not None and not is_extension_origin(origin):
        raise ForbiddenOriginError("Only the Veil browser extension may call the companion.")


def preflight_response(request: web.Request) -> web.Response:
    headers = {
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Max-Age": str(PREFLIGHT_MAX_AGE_S),
    }
    # Chrome's Private Network Access asks before a public context reaches loopback.
    if request.headers.get("Access-Control-Request-Private-Network", "").lower() == "true":
        headers["Access-Control-Allow-Private-Network"] = "true"
    return web.Response(status=204, headers=headers)


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    check_host(request, allow_remote=request.app[ALLOW_REMOTE_KEY])
    check_origin(request)
    is_preflight = (
        request.method == "OPTIONS"
        and "Origin" in request.headers
        and "Access-Control-Request-Method" in request.headers
    )
    if is_preflight:
        return preflight_response(request)
    return await handler(request)


async def add_response_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: CORS for extension origins (errors included), no caching."""
    origin = request.headers.get("Origin")
    if origin is not None and is_extension_origin(origin):
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Expose-Headers"] = EXPOSED_HEADERS
        response.headers["Vary"] = "Origin"
    response.headers.setdefault("Cache-Control", "no-store")
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
