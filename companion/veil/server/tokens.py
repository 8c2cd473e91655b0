"""Long-lived bearer tokens: issued at pairing, checked on every call, revoked by `veil unpair`.

Only SHA-256 digests of tokens are stored, never the tokens themselves: in the OS keyring
(service "veil") when a working keyring backend exists, else in `<config dir>/tokens.json`
with mode 0600. `VEIL_TOKEN_STORE=file|keyring|auto` picks the store (tests use `file`).
A running server sees `veil unpair` on its very next request: the file store is re-read on
every check, the keyring store whenever its stamp file changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from veil.fileio import write_atomically

TOKEN_PREFIX = "veil_"
KEYRING_SERVICE = "veil"
KEYRING_USERNAME = "token-digests"
TOKENS_FILE = "tokens.json"
TOKENS_STAMP_FILE = "tokens.stamp"  # changes whenever the keyring copy changes
STORE_ENV = "VEIL_TOKEN_STORE"


@dataclass(frozen=True)
class TokenRecord:
    token_id: str  # public short id, shown by `veil doctor`
    digest: str  # hex SHA-256 of the token
    client: str
    origin: str | None  # extension origin the token is bound to, None when paired without one
    created: str  # ISO 8601 UTC


class TokenStore(Protocol):
    @property
    def description(self) -> str: ...

    def load(self) -> list[TokenRecord]: ...

    def save(self, records: list[TokenRecord]) -> None: ...


def _encode(records: list[TokenRecord]) -> str:
    return json.dumps({"version": 1, "tokens": [asdict(r) for r in records]}, indent=1)


def _decode(text: str | None) -> list[TokenRecord]:
    if not text:
        return []
    raw: Any = json.loads(text)
    return [TokenRecord(**item) for item in raw.get("tokens", [])]


def write_private_file(path: Path, text: str) -> None:
    """Write atomically with mode 0600, so no reader ever sees a partial or world-readable file."""
    write_atomically(path, text.encode("utf-8"), mode=0o600)


class FileTokenStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def description(self) -> str:
        return f"file {self.path} (mode 0600)"

    def load(self) -> list[TokenRecord]:
        try:
            return _decode(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return []

    def save(self, records: list[TokenRecord]) -> None:
        write_private_file(self.path, _encode(records))


class KeyringTokenStore:
    """Digests in the OS keyring, cached in memory and re-read only when they change.

    A keyring call can be slow or even block (a locked Secret Service collection prompts), so
    the server must not make one per request. Every write, by `veil pair`'s server or by
    `veil unpair`, also replaces `<config dir>/tokens.stamp`; a change of that file (a new
    inode on each replace) tells a running server to re-read the keyring. A `stat` per request
    is what revocation costs.
    """

    def __init__(self, stamp_path: Path) -> None:
        import keyring

        self._keyring = keyring
        self._stamp_path = stamp_path
        self._cached: list[TokenRecord] | None = None
        self._cached_stamp: tuple[int, int, int] | None = None

    @property
    def description(self) -> str:
        backend = self._keyring.get_keyring()
        return f"OS keyring ({type(backend).__module__}.{type(backend).__name__})"

    def _stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self._stamp_path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_mtime_ns, st.st_size)

    def load(self) -> list[TokenRecord]:
        stamp = self._stamp()
        if self._cached is None or stamp != self._cached_stamp:
            self._cached = _decode(self._keyring.get_password(KEYRING_SERVICE, KEYRING_USERNAME))
            self._cached_stamp = stamp
        return list(self._cached)

    def save(self, records: list[TokenRecord]) -> None:
        if records:
            self._keyring.set_password(KEYRING_SERVICE, KEYRING_USERNAME, _encode(records))
        else:
            # Nothing stored means already unpaired.
            with contextlib.suppress(self._keyring.errors.PasswordDeleteError):
                self._keyring.delete_password(KEYRING_SERVICE, KEYRING_USERNAME)
        write_private_file(self._stamp_path, secrets.token_hex(8))
        self._cached = list(records)
        self._cached_stamp = self._stamp()


def keyring_usable() -> tuple[bool, str]:
    """Whether a real keyring backend is available, and its name (the fail/null ones are not)."""
    try:
        import keyring
        from keyring.backends import chainer, fail, null
    except ImportError:
        return False, "keyring not installed"
    backend = keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__name__}"
    if isinstance(backend, fail.Keyring | null.Keyring):
        return False, name
    if isinstance(backend, chainer.ChainerBackend) and not backend.backends:
        return False, name
    return True, name


def open_token_store(config_dir: Path) -> TokenStore:
    choice = os.environ.get(STORE_ENV, "auto").strip().lower()
    if choice not in {"auto", "file", "keyring"}:
        raise ValueError(f"{STORE_ENV} must be auto, file or keyring, not {choice!r}")
    if choice == "keyring" or (choice == "auto" and keyring_usable()[0]):
        return KeyringTokenStore(config_dir / TOKENS_STAMP_FILE)
    return FileTokenStore(config_dir / TOKENS_FILE)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(store: TokenStore, *, client: str, origin: str | None) -> tuple[str, TokenRecord]:
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    record = TokenRecord(
        token_id=secrets.token_hex(4),
        digest=digest(token),
        client=client,
        origin=origin,
        created=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    store.save([*store.load(), record])
    return token, record


def find_token(store: TokenStore, presented: str) -> TokenRecord | None:
    """The record of a presented token, comparing digests in constant time against all of them."""
    wanted = digest(presented).encode("ascii")
    match: TokenRecord | None = None
    for record in store.load():
        # No early exit: the time taken does not depend on which record matched.
        if hmac.compare_digest(wanted, record.digest.encode("ascii")):
            match = record
    return match


def revoke_token(store: TokenStore, token_id: str) -> bool:
    records = store.load()
    kept = [r for r in records if r.token_id != token_id]
    store.save(kept)
    return len(kept) != len(records)


def revoke_all(store: TokenStore) -> int:
    count = len(store.load())
    store.save([])
    return count
