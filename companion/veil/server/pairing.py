"""One-time pairing codes: `veil pair` writes one, a running server redeems it.

The code travels between the two processes through `<config dir>/pairing.json` (mode 0600),
holding a salted SHA-256 digest of the code and its expiry, never the code itself. The
server reads that file on every attempt, so a server started before `veil pair` accepts it.
Wrong attempts are counted in the server: after `max_failures` in a row pairing is locked
for `lock_s` seconds and the pending code is discarded, so a code shown once can be guessed
at most `max_failures` times. A fresh code from `veil pair` (which only the user who owns the
config dir can run) ends the lock at once: any local process can send wrong codes, so a
lock that outlived the user's next code would let it keep pairing locked forever.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from veil.server.http_errors import PairingCodeInvalidError, PairingLockedError
from veil.server.tokens import write_private_file

PAIRING_FILE = "pairing.json"
CODE_DIGITS = 6
CODE_LIFETIME_S = 300.0


@dataclass(frozen=True)
class PendingCode:
    salt: str
    digest: str
    expires: float  # Unix time


def _code_digest(salt: str, code: str) -> str:
    return hashlib.sha256(f"{salt}:{code}".encode()).hexdigest()


def normalize_code(code: str) -> str:
    return "".join(ch for ch in code if ch not in " -\t")


def issue_code(config_dir: Path, *, lifetime_s: float = CODE_LIFETIME_S) -> tuple[str, float]:
    """Create a fresh code (replacing any pending one); returns it and its expiry (Unix time)."""
    code = f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"
    salt = secrets.token_hex(16)
    expires = time.time() + lifetime_s
    pending = {"salt": salt, "digest": _code_digest(salt, code), "expires": expires}
    write_private_file(config_dir / PAIRING_FILE, json.dumps(pending))
    return code, expires


def read_pending(config_dir: Path) -> PendingCode | None:
    try:
        raw = json.loads((config_dir / PAIRING_FILE).read_text(encoding="utf-8"))
        return PendingCode(str(raw["salt"]), str(raw["digest"]), float(raw["expires"]))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return None


def discard_pending(config_dir: Path) -> None:
    (config_dir / PAIRING_FILE).unlink(missing_ok=True)


class PairingGate:
    """Redeems codes for a running server and locks pairing after repeated wrong codes.

    All methods run on the event loop thread without awaiting, so a code cannot be redeemed
    twice by concurrent requests.
    """

    def __init__(
        self,
        config_dir: Path,
        *,
        max_failures: int,
        lock_s: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._config_dir = config_dir
        self._max_failures = max_failures
        self._lock_s = lock_s
        self._clock = clock
        self._failures = 0
        self._locked_until = 0.0
        self._locked_salt: str | None = None  # the code that was pending when the lock began

    def redeem(self, code: str) -> None:
        """Use up the pending code if `code` matches it; raise a typed error otherwise."""
        now = self._clock()
        pending = read_pending(self._config_dir)
        fresh_code = pending is not None and pending.salt != self._locked_salt
        if now < self._locked_until and not fresh_code:
            raise self._locked(now)
        if self._locked_until:  # a lock ended, or the user made a new code: count afresh
            self._locked_until = 0.0
            self._locked_salt = None
            self._failures = 0
        candidate = normalize_code(code)
        valid = (
            pending is not None
            and now < pending.expires
            and len(candidate) == CODE_DIGITS
            and candidate.isdigit()
            and hmac.compare_digest(_code_digest(pending.salt, candidate), pending.digest)
        )
        if valid:
            discard_pending(self._config_dir)  # single use
            self._failures = 0
            return
        self._failures += 1
        if self._failures >= self._max_failures:
            self._locked_until = now + self._lock_s
            self._locked_salt = pending.salt if pending is not None else None
            discard_pending(self._config_dir)
            raise self._locked(now)
        raise PairingCodeInvalidError(
            "The pairing code is wrong, expired or already used. Run `veil pair` for a new one."
        )

    def _locked(self, now: float) -> PairingLockedError:
        seconds = math.ceil(self._locked_until - now)
        return PairingLockedError(
            f"Too many wrong pairing codes: pairing is locked for {seconds} s. "
            "Then run `veil pair` for a new code.",
            retry_after=seconds,
        )
