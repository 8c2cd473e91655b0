"""Where Veil keeps its per-user state (pairing, tokens fallback) and finds its models."""

from __future__ import annotations

import os
import sys
from pathlib import Path


def config_dir() -> Path:
    """The per-user config directory, created with owner-only permissions.

    `VEIL_CONFIG_DIR` overrides it (tests use a temporary directory).
    """
    override = os.environ.get("VEIL_CONFIG_DIR")
    if override:
        path = Path(override)
    elif sys.platform == "darwin":
        path = Path.home() / "Library" / "Application Support" / "Veil"
    elif sys.platform == "win32":
        path = Path(os.environ.get("APPDATA", Path.home())) / "Veil"
    else:
        path = Path(os.environ.get("XDG_CONFIG_HOME", Path.home() / ".config")) / "veil"
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def repo_root() -> Path:
    """The repository checkout this package was installed from (editable install)."""
    return Path(__file__).resolve().parents[2]


def models_dir() -> Path:
    """The folder holding `manifest.json` and the model files.

    `VEIL_MODELS_DIR` overrides it; in a checkout (editable install) it is the committed
    `models/`; in an installed wheel, the copy shipped inside the package (`veil/models/`).
    """
    override = os.environ.get("VEIL_MODELS_DIR")
    if override:
        return Path(override)
    checkout = repo_root() / "models"
    if (checkout / "manifest.json").is_file() and (repo_root() / "companion").is_dir():
        return checkout
    return Path(__file__).resolve().parent / "models"
