"""`veil pair`: print a one-time code that pairs the browser extension with the companion."""

from __future__ import annotations

import argparse
import time

from veil.config import config_dir
from veil.server.localprobe import veil_health
from veil.server.pairing import CODE_LIFETIME_S, issue_code
from veil.server.settings import DEFAULT_PORT


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "pair",
        help="print a one-time code to pair the browser extension",
        description="Print a fresh 6-digit pairing code, valid for 5 minutes and usable once. "
        "A running `veil serve` accepts it without a restart. A new code replaces the previous.",
    )
    parser.add_argument(
        "--port",
        type=int,
        default=DEFAULT_PORT,
        help="port of `veil serve` (default %(default)s)",
    )


def run(args: argparse.Namespace) -> int:
    code, expires = issue_code(config_dir(), lifetime_s=CODE_LIFETIME_S)
    minutes = round((expires - time.time()) / 60)
    print(f"Pairing code: {code[:3]} {code[3:]}")
    print(f"Enter it in the Veil extension within {minutes} minutes. It works once.")
    if veil_health(args.port) is not None:
        print(f"veil serve is running on 127.0.0.1:{args.port} and will accept it.")
    else:
        print(f"Note: no veil server answers on 127.0.0.1:{args.port} yet; start `veil serve`.")
    return 0
