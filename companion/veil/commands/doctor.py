"""`veil doctor`: versions, models and their hashes, token store, port, pairing state, and
whether anyone is enrolled (names and strengths only).

Exit status is non-zero when a model is missing or fails its hash check, so
`scripts/install` (which runs `veil doctor --models-only`) fails loudly.
"""

from __future__ import annotations

import argparse
import platform
import time
from importlib import metadata

from veil import __version__
from veil.config import config_dir, models_dir
from veil.errors import VeilError
from veil.server.localprobe import port_in_use, veil_health
from veil.server.pairing import read_pending
from veil.server.settings import DEFAULT_PORT
from veil.server.tokens import FileTokenStore, keyring_usable, open_token_store

_DISTRIBUTIONS = (
    ("onnxruntime", "onnxruntime"),
    ("numpy", "numpy"),
    ("opencv", "opencv-python-headless"),
    ("pillow", "pillow"),
    ("pillow-heif", "pillow-heif"),
    ("aiohttp", "aiohttp"),
    ("keyring", "keyring"),
)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "doctor",
        help="check the installation: versions, models, token store, port, pairing",
        description="Report what Veil needs to work; exit 1 when a model is missing or damaged.",
    )
    parser.add_argument(
        "--models-only", action="store_true", help="only verify the model files (used by install)"
    )
    parser.add_argument(
        "--port", type=int, default=DEFAULT_PORT, help="port to check (default %(default)s)"
    )


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def _table(rows: list[tuple[str, ...]]) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        cells = (cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        print(("  " + "  ".join(cells)).rstrip())


def check_models() -> bool:
    """Print the model table; True when every model file is present and matches its sha256."""
    from veil.modelstore import model_status

    statuses = model_status()
    print(f"Models ({models_dir()}):")
    if not statuses:
        print("  the manifest lists no models")
        return False
    rows: list[tuple[str, ...]] = [("model", "role", "kind", "file", "sha256", "status")]
    for status in statuses:
        sha = status.sha256[:16] + "..." if status.sha256 else "-"
        rows.append((status.name, status.role, status.kind, status.path, sha, status.status))
    _table(rows)
    healthy = all(status.status == "ok" for status in statuses)
    if not healthy:
        print(
            "  a model file is missing or damaged: `git checkout -- models/` restores the "
            "committed files (build/models/README.md explains how to rebuild them)"
        )
    return healthy


def _versions() -> None:
    print("Versions:")
    rows: list[tuple[str, ...]] = [("veil", __version__), ("python", platform.python_version())]
    rows += [(label, _version(dist)) for label, dist in _DISTRIBUTIONS]
    _table(rows)


def _token_store() -> None:
    usable, backend = keyring_usable()
    store = open_token_store(config_dir())
    print("Token store:")
    print(f"  keyring backend: {backend}{'' if usable else ' (not usable)'}")
    if isinstance(store, FileTokenStore):
        print(f"  fallback: token digests kept in {store.path} (mode 0600), not in a keyring")
    else:
        print(f"  token digests kept in the {store.description}")


def _server(port: int) -> None:
    print("Server:")
    health = veil_health(port)
    if health is not None:
        print(
            f"  veil {health.get('version')} answers on 127.0.0.1:{port} "
            f"(api {health.get('api')}, models: {', '.join(health.get('models', []))})"
        )
    elif port_in_use(port):
        print(f"  port {port} is in use by something that is not Veil: use `veil serve --port`")
    else:
        print(f"  nothing listens on 127.0.0.1:{port}: start `veil serve`")


def _pairing() -> None:
    store = open_token_store(config_dir())
    print("Pairing:")
    try:
        records = store.load()
    except VeilError as exc:
        print(f"  {exc.message}")
        records = []
    print(f"  {len(records)} token(s)")
    for record in records:
        print(
            f"  - {record.token_id}  {record.origin or '(no origin)'}  {record.client!r}  "
            f"paired {record.created}"
        )
    pending = read_pending(config_dir())
    if pending is not None and pending.expires > time.time():
        print(f"  a pairing code is pending for {int(pending.expires - time.time())} s more")


def _profiles() -> None:
    from veil.profiles import PROFILES_FOLDER, list_profiles

    folder = config_dir() / PROFILES_FOLDER
    print("Protect my face (enrolment):")
    try:
        people = list_profiles(config_dir())
    except VeilError as exc:
        print(f"  {exc.message}")
        return
    if not people:
        print("  nobody enrolled: every face gets the default cloak, which protects little")
        print("  (`veil enrol PHOTO...` or the extension's options page)")
        return
    print(f"  {len(people)} enrolled, in {folder} (mode 0600 files):")
    for p in people:
        print(f"  - {p.name}: strength {p.strength.value}, {p.photos} photos")


def run(args: argparse.Namespace) -> int:
    if args.models_only:
        return 0 if check_models() else 1
    print(f"Veil doctor (config dir {config_dir()})")
    _versions()
    models_ok = check_models()
    _token_store()
    _server(args.port)
    _pairing()
    _profiles()
    return 0 if models_ok else 1
