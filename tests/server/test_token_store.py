"""Token store selection and behaviour, in process (no server needed).

The OS keyring is external to Veil; where this machine has none, a minimal in-memory keyring
backend stands in for it, so the keyring code path runs for real through the `keyring` API.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring
import pytest
from keyring.backend import KeyringBackend

from veil.server.tokens import (
    KEYRING_SERVICE,
    FileTokenStore,
    KeyringTokenStore,
    find_token,
    issue_token,
    keyring_usable,
    open_token_store,
    revoke_all,
    revoke_token,
)


class MemoryKeyring(KeyringBackend):
    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.items: dict[tuple[str, str], str] = {}

        self.reads = 0

    def get_password(self, service: str, username: str) -> str | None:
        self.reads += 1
        return self.items.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.items[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        if self.items.pop((service, username), None) is None:
            raise keyring.errors.PasswordDeleteError(username)


@pytest.fixture
def memory_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    backend = MemoryKeyring()
    keyring.set_keyring(backend)
    yield backend
    keyring.set_keyring(previous)


def test_keyring_store_keeps_only_digests(
    memory_keyring: MemoryKeyring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VEIL_TOKEN_STORE", "auto")
    assert keyring_usable()[0]
    store = open_token_store(tmp_path)
    assert isinstance(store, KeyringTokenStore)
    token, record = issue_token(store, client="test", origin="moz-extension://abc")
    stored = next(iter(memory_keyring.items.values()))
    assert token not in stored and record.digest in stored
    assert list(memory_keyring.items) == [(KEYRING_SERVICE, "token-digests")]
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["tokens.lock", "tokens.stamp"], "no digests on disk"
    assert find_token(store, token) == record
    assert find_token(store, token + "x") is None
    assert revoke_all(store) == 1
    assert find_token(store, token) is None and memory_keyring.items == {}


def test_file_store_is_private_and_revocable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VEIL_TOKEN_STORE", "file")
    store = open_token_store(tmp_path)
    assert isinstance(store, FileTokenStore)
    first, first_record = issue_token(store, client="a", origin=None)
    second, _ = issue_token(store, client="b", origin=None)
    text = store.path.read_text()
    assert first not in text and second not in text
    assert store.path.stat().st_mode & 0o777 == 0o600
    assert revoke_token(store, first_record.token_id)
    assert find_token(store, first) is None and find_token(store, second) is not None


def test_auto_falls_back_to_file_without_a_keyring(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from keyring.backends import fail

    previous = keyring.get_keyring()
    keyring.set_keyring(fail.Keyring())
    try:
        monkeypatch.setenv("VEIL_TOKEN_STORE", "auto")
        assert not keyring_usable()[0]
        assert isinstance(open_token_store(tmp_path), FileTokenStore)
    finally:
        keyring.set_keyring(previous)


def test_keyring_store_is_read_once_and_sees_revocation_by_another_process(
    memory_keyring: MemoryKeyring, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VEIL_TOKEN_STORE", "keyring")
    server_store = open_token_store(tmp_path)  # what a running server holds
    token, _ = issue_token(server_store, client="test", origin=None)
    reads = memory_keyring.reads
    for _ in range(20):
        assert find_token(server_store, token) is not None
    assert memory_keyring.reads == reads, "no keyring call per request"
    assert revoke_all(open_token_store(tmp_path)) == 1  # `veil unpair`, another process
    assert find_token(server_store, token) is None
