"""`veil` command line: one module per subcommand under `veil.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Protocol, cast

from veil import __version__

# Each name is a module `veil.commands.<name>` that defines `add_parser` and `run`.
SUBCOMMANDS = ("cloak", "check", "enrol", "serve", "pair", "unpair", "doctor")


class Subcommand(Protocol):
    def add_parser(
        self, subparsers: argparse._SubParsersAction[argparse.ArgumentParser]
    ) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="veil", description=__doc__)
    parser.add_argument("--version", action="version", version=f"veil {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f"veil.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name == f"veil.commands.{name}":
                continue  # not built yet in this checkout
            raise
        command = cast(Subcommand, module)
        command.add_parser(subparsers)
        subparsers.choices[name].set_defaults(_run=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from veil.memory import share_one_malloc_arena

    share_one_malloc_arena()  # before any worker thread exists (see veil.memory)
    args = build_parser().parse_args(argv)
    return int(args._run(args))


if __name__ == "__main__":
    sys.exit(main())
