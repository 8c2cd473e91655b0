"""Typed errors raised by the HTTP layer, on top of the engine's errors in `veil.errors`.

Each carries its `ErrorCode` (so its status) and any headers its response needs.
"""

from __future__ import annotations

from veil.errors import ErrorCode, VeilError


class HttpVeilError(VeilError):
    """A VeilError that also sets response headers (Retry-After, WWW-Authenticate...)."""

    def response_headers(self) -> dict[str, str]:
        return {}


class BadRequestError(HttpVeilError):
    code = ErrorCode.BAD_REQUEST


class ForbiddenHostError(HttpVeilError):
    code = ErrorCode.FORBIDDEN_HOST


class ForbiddenOriginError(HttpVeilError):
    code = ErrorCode.FORBIDDEN_ORIGIN


class UnauthorizedError(HttpVeilError):
    code = ErrorCode.UNAUTHORIZED

    def response_headers(self) -> dict[str, str]:
        return {"WWW-Authenticate": 'Bearer realm="veil"'}


class PairingCodeInvalidError(HttpVeilError):
    code = ErrorCode.PAIRING_CODE_INVALID


class _RetryLaterError(HttpVeilError):
    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = max(1, retry_after)

    def response_headers(self) -> dict[str, str]:
        return {"Retry-After": str(self.retry_after)}


class PairingLockedError(_RetryLaterError):
    code = ErrorCode.PAIRING_LOCKED


class BusyError(_RetryLaterError):
    code = ErrorCode.BUSY


class PayloadTooLargeError(HttpVeilError):
    """Body over the limit; the response also closes the connection (see error_responses)."""

    code = ErrorCode.PAYLOAD_TOO_LARGE


class RequestTimeoutError(HttpVeilError):
    code = ErrorCode.TIMEOUT


class ClientGoneError(BadRequestError):
    """The client disconnected mid-request; logged as one line, never as a 500."""
