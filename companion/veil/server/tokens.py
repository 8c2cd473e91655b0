"""Long-lived bearer tokens: issued at pairing, checked on every call, revoked by `veil unpair`.

Only SHA-256 digests of tokens are stored, never the tokens themselves: in the OS keyring
(service "veil") when a working keyring backend exists, else in `<config dir>/tokens.json`
with mode 0600. `VEIL_TOKEN_STORE=file|keyring|auto` picks the store (tests use `file`).
A running server sees `veil unpair` on its very next request: the file store is re-read on
every check, the keyring store whenever its stamp file changes.

Every change is a read-modify-write (`issue_token`, `revoke_token`, `revoke_all`) done under
`store.transaction()`: a lock shared by the threads of this process and, through `flock` on
`<config dir>/tokens.lock`, by every Veil process, so a `veil unpair` run while the server
issues a token is never overwritten by the server's stale copy. Stores may block (a keyring
can prompt): the server calls them only from worker threads (`asyncio.to_thread`).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from veil.errors import TokenStoreUnreadableError
from veil.fileio import write_atomically

try:
    import fcntl
except ImportError:  # Windows: the in-process lock only
    fcntl = None  # type: ignore[assignment]

TOKEN_PREFIX = "veil_"
KEYRING_SERVICE = "veil"
KEYRING_USERNAME = "token-digests"
TOKENS_FILE = "tokens.json"
TOKENS_STAMP_FILE = "tokens.stamp"  # changes whenever the keyring copy changes
TOKENS_LOCK_FILE = "tokens.lock"  # flock'ed around every read-modify-write
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

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        """Hold this while reading, changing and saving the records (see the module doc)."""
        ...


_THREAD_LOCKS: dict[Path, threading.RLock] = {}
_THREAD_LOCKS_GUARD = threading.Lock()


@contextlib.contextmanager
def _store_transaction(lock_path: Path) -> Iterator[None]:
    """This process's lock for `lock_path`, then an exclusive `flock` on the file itself."""
    with _THREAD_LOCKS_GUARD:
        thread_lock = _THREAD_LOCKS.setdefault(lock_path.resolve(), threading.RLock())
    with thread_lock:
        if fcntl is None:
            yield
            return
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # releases the flock


def _encode(records: list[TokenRecord]) -> str:
    return json.dumps({"version": 1, "tokens": [asdict(r) for r in records]}, indent=1)


def _decode(text: str | None, where: str) -> list[TokenRecord]:
    if not text:
        return []
    try:
        raw: Any = json.loads(text)
        records = [TokenRecord(**item) for item in raw.get("tokens", [])]
        if not all(isinstance(r.digest, str) for r in records):
            raise TypeError("a digest is not a string")
    except (ValueError, TypeError, AttributeError) as exc:
        raise TokenStoreUnreadableError(
            f"The paired-extension tokens in {where} are unreadable ({type(exc).__name__}). "
            "Run `veil unpair` to reset them, then pair again with `veil pair`."
        ) from exc
    return records


def write_private_file(path: Path, text: str) -> None:
    """Write atomically with mode 0600, so no reader ever sees a partial or world-readable file."""
    write_atomically(path, text.encode("utf-8"), mode=0o600)


class FileTokenStore:
    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def description(self) -> str:
        return f"file {self.path} (mode 0600)"

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return _store_transaction(self.path.with_name(TOKENS_LOCK_FILE))

    def load(self) -> list[TokenRecord]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        except UnicodeDecodeError as exc:
            raise TokenStoreUnreadableError(
                f"{self.path} is not text: run `veil unpair` to reset it, then `veil pair`."
            ) from exc
        return _decode(text, str(self.path))

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
        self._cache_lock = threading.Lock()  # load() runs in several worker threads at once

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

    def transaction(self) -> contextlib.AbstractContextManager[None]:
        return _store_transaction(self._stamp_path.with_name(TOKENS_LOCK_FILE))

    def load(self) -> list[TokenRecord]:
        with self._cache_lock:
            stamp = self._stamp()
            if self._cached is None or stamp != self._cached_stamp:
                text = self._keyring.get_password(KEYRING_SERVICE, KEYRING_USERNAME)
                self._cached = _decode(text, "the OS keyring")
                self._cached_stamp = stamp
            return list(self._cached)

    def save(self, records: list[TokenRecord]) -> None:
        with self._cache_lock:
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
    with store.transaction():
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
    with store.transaction():
        records = store.load()
        kept = [r for r in records if r.token_id != token_id]
        store.save(kept)
    return len(kept) != len(records)


def revoke_all(store: TokenStore) -> int:
    """Revoke every token; a corrupt store is reset too (this is how users repair it)."""
    with store.transaction():
        try:
            count = len(store.load())
        except TokenStoreUnreadableError:
            count = 0
        store.save([])
    return count
