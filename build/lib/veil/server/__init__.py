"""`veil serve`: the local HTTP API the browser extension calls (protocol in docs/api.md).

One small module per concern: `guard` (Host/Origin/CORS), `tokens` (token store),
`pairing` (one-time codes and lock-out), `limits` (body and pixel caps), `pool` (bounded
worker pool), `handlers` (the endpoints), `error_responses` (errors as JSON), `app` (the
`create_app` factory) and `runner` (binding and serving).
"""

from veil.server.app import create_app
from veil.server.settings import ServerConfig

__all__ = ["ServerConfig", "create_app"]
