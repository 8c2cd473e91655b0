"""`veil unpair`: revoke every token; a running server refuses them from the next request on."""

from __future__ import annotations

import argparse

from veil.config import config_dir
from veil.server.pairing import discard_pending
from veil.server.tokens import open_token_store, revoke_all


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    subparsers.add_parser(
        "unpair",
        help="revoke all extension tokens",
        description="Revoke every token given to a browser extension, and any pending pairing "
        "code. Extensions must pair again (`veil pair`).",
    )


def run(args: argparse.Namespace) -> int:
    directory = config_dir()
    store = open_token_store(directory)
    count = revoke_all(store)
    discard_pending(directory)
    print(f"Revoked {count} token(s) ({store.description}). Pair again with `veil pair`.")
    return 0
