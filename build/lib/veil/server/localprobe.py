"""Ask the local port whether a Veil companion answers there (for `veil pair` and doctor)."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def veil_health(
    port: int, host: str = "127.0.0.1", timeout_s: float = 2.0
) -> dict[str, Any] | None:
    """The /v1/health answer when a Veil companion listens there, else None."""
    try:
        with urllib.request.urlopen(f"http://{host}:{port}/v1/health", timeout=timeout_s) as reply:
            body: Any = json.loads(reply.read(65536))
    except (urllib.error.URLError, OSError, ValueError):
        return None
    if isinstance(body, dict) and body.get("name") == "veil":
        return body
    return None
