"""Every failure becomes `{"error": {"code", "message"}}` with the status of its ErrorCode.

That includes aiohttp's own 404/405/413 and unexpected exceptions, so the extension only ever
has to parse one error shape (docs/api.md, "Errors").
"""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from veil.errors import HTTP_STATUS, ErrorCode, VeilError
from veil.server.http_errors import HttpVeilError

log = logging.getLogger("veil.server")

_AIOHTTP_CODES: dict[int, ErrorCode] = {
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    413: ErrorCode.PAYLOAD_TOO_LARGE,
}

_AIOHTTP_MESSAGES: dict[ErrorCode, str] = {
    ErrorCode.NOT_FOUND: "No such endpoint; the API is described in docs/api.md.",
    ErrorCode.METHOD_NOT_ALLOWED: "This endpoint does not take that method.",
    ErrorCode.PAYLOAD_TOO_LARGE: "The request body is too large.",
}


def error_response(
    code: ErrorCode, message: str, *, headers: dict[str, str] | None = None
) -> web.Response:
    response = web.json_response(
        {"error": {"code": code.value, "message": message}},
        status=HTTP_STATUS[code],
        headers=headers,
    )
    if code in (ErrorCode.PAYLOAD_TOO_LARGE, ErrorCode.CANCELLED):
        # The client may still be sending a huge body (a cancelled video may be mid-upload):
        # do not keep the connection for more.
        response.force_close()
    return response


def _from_http_exception(exc: web.HTTPException) -> web.Response:
    code = _AIOHTTP_CODES.get(exc.status)
    if code is None:
        code = ErrorCode.BAD_REQUEST if exc.status < 500 else ErrorCode.INTERNAL
    message = _AIOHTTP_MESSAGES.get(code, exc.reason)
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return error_response(code, message, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except HttpVeilError as exc:
        return error_response(exc.code, exc.message, headers=exc.response_headers())
    except VeilError as exc:
        return error_response(exc.code, exc.message)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise  # redirects and the like are not errors
        return _from_http_exception(exc)
    except Exception:
        # The traceback goes to the log; the request (photo, token) does not.
        log.exception("unexpected error handling %s %s", request.method, request.path)
        return error_response(ErrorCode.INTERNAL, "Unexpected error in the Veil companion.")
