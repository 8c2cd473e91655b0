"""Token store changes are serialised (threads and processes) and bad contents are typed errors."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

import pytest

from veil.errors import TokenStoreUnreadableError
from veil.server.tokens import (
    TOKENS_FILE,
    TOKENS_LOCK_FILE,
    FileTokenStore,
    TokenRecord,
    find_token,
    issue_token,
    revoke_all,
)


class PausingStore(FileTokenStore):
    """Stops inside `load` (the read of a read-modify-write) until told to go on."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.pause = False
        self.paused = threading.Event()
        self.go_on = threading.Event()

    def load(self) -> list[TokenRecord]:
        records = super().load()
        if self.pause:
            self.pause = False
            self.paused.set()
            assert self.go_on.wait(30)
        return records


def test_unpair_during_issue_token_is_not_lost(tmp_path: Path) -> None:
    """`issue_token` reads, then saves the records plus one: a `veil unpair` in between must
    not be overwritten by the stale read (the revoked token would come back)."""
    server = PausingStore(tmp_path / TOKENS_FILE)
    old_token, _ = issue_token(server, client="old", origin=None)
    server.pause = True
    issued: list[str] = []
    issuing = threading.Thread(
        target=lambda: issued.append(issue_token(server, client="new", origin=None)[0])
    )
    issuing.start()
    assert server.paused.wait(10)
    # `veil unpair` (its own store object, as in its own process) while the issue is mid-way.
    unpair_done = threading.Event()
    unpair = threading.Thread(
        target=lambda: (revoke_all(FileTokenStore(tmp_path / TOKENS_FILE)), unpair_done.set())
    )
    unpair.start()
    # Give an unlocked unpair every chance to slip in; a locked one waits for the issue.
    unpair_done.wait(1.0)
    server.go_on.set()
    issuing.join(10)
    unpair.join(10)
    assert find_token(server, old_token) is None, "the unpair was lost"


def test_another_process_cannot_take_the_store_lock_while_it_is_held(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / TOKENS_FILE)
    probe = (
        "import fcntl, os, sys\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)\n"
        "try:\n"
        "    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)\n"
        "except BlockingIOError:\n"
        "    sys.exit(3)\n"
    )
    lock_file = str(tmp_path / TOKENS_LOCK_FILE)
    with store.transaction():
        held = subprocess.run([sys.executable, "-c", probe, lock_file], timeout=30)
    free = subprocess.run([sys.executable, "-c", probe, lock_file], timeout=30)
    assert (held.returncode, free.returncode) == (3, 0)


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"tokens": [{"nope": 1}]}', b'["a list"]', b"\xff\xfe\x00garbage"],
)
def test_corrupt_token_file_is_a_typed_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / TOKENS_FILE).write_bytes(content)
    store = FileTokenStore(tmp_path / TOKENS_FILE)
    with pytest.raises(TokenStoreUnreadableError, match="veil unpair"):
        find_token(store, "veil_x")
    assert revoke_all(store) == 0  # `veil unpair` resets it
    assert store.load() == []
