"""Veil: cloak face photos against face-recognition scrapers."""

import os as _os

# ONNX Runtime's Linux and macOS wheels carry Microsoft's 1DS telemetry client: at import it
# writes a session id to $TMPDIR/.ses and, once a session runs, it resolves and posts to
# mobile.events.data.microsoft.com. `onnxruntime.disable_telemetry_events()` does not stop
# either (measured with strace on 1.32); this variable, read when the runtime is imported,
# stops both. It is set here, before any Veil module can import onnxruntime, and forced (a
# user's ORT_DISABLE_TELEMETRY=0 does not turn it back on): a privacy tool makes no
# connection but loopback. tests/test_no_network.py proves it under strace.
_os.environ["ORT_DISABLE_TELEMETRY"] = "1"

__version__ = "0.1.0"
