"""`veil serve`: run the companion's local HTTP API for the browser extension (docs/api.md)."""

from __future__ import annotations

import argparse
import asyncio
import sys

from veil.errors import VeilError
from veil.personal import EnrolPlan
from veil.server.backend import CloakBackend, EngineBackend
from veil.server.logs import configure_logging
from veil.server.runner import BindError, check_bind_address, is_loopback, serve
from veil.server.settings import (
    BODY_TIMEOUT_S,
    DEFAULT_HOST,
    DEFAULT_PORT,
    DEFAULT_QUEUE,
    DEFAULT_TIMEOUT_S,
    MAX_VIDEO_BYTES,
    MAX_VIDEO_SECONDS,
    PAIRING_LOCK_S,
    ServerConfig,
    default_workers,
)
from veil.server.tokens import open_token_store


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the local HTTP API the browser extension uses",
        description="Serve the Veil API on 127.0.0.1 (see docs/api.md). Models load once, "
        "at start-up; photos are cloaked in memory and videos through private temporary "
        "files, by a bounded pool of worker threads.",
    )
    parser.add_argument("--host", default=DEFAULT_HOST, help="address (default %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="port (default %(default)s)")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow binding a non-loopback address (other machines could then reach it)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=default_workers(),
        help="photos cloaked in parallel (default %(default)s on this machine)",
    )
    parser.add_argument(
        "--queue",
        type=int,
        default=DEFAULT_QUEUE,
        help="photos allowed to wait for a worker before answering 503 busy (default %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="seconds a cloak request may take, queueing included (default %(default)g)",
    )
    parser.add_argument(
        "--body-timeout",
        type=float,
        default=BODY_TIMEOUT_S,
        help="seconds a photo's bytes may take to arrive (default %(default)g)",
    )
    parser.add_argument(
        "--memory-budget-mb",
        type=int,
        default=None,
        help="memory the photos being cloaked may use together, estimated from their headers "
        "(default: a quarter of RAM, at most 4096, at least what one 100 MP photo needs)",
    )
    parser.add_argument(
        "--enrol-steps",
        type=int,
        default=EnrolPlan.steps,
        help='optimiser steps of an enrolment from the extension ("Protect my face"; '
        "default %(default)s; fewer is faster and protects less: tests use 2)",
    )
    parser.add_argument(
        "--max-video-seconds",
        type=float,
        default=MAX_VIDEO_SECONDS,
        help="longest video accepted, in seconds (default %(default)g; more: 413 video_too_long)",
    )
    parser.add_argument(
        "--max-video-bytes",
        type=int,
        default=MAX_VIDEO_BYTES,
        help="largest video upload in bytes, streamed to a private temporary file "
        "(default %(default)s, 2 GiB; more: 413 payload_too_large)",
    )
    parser.add_argument(
        "--pairing-lock-seconds",
        type=float,
        default=PAIRING_LOCK_S,
        help="how long pairing stays locked after 5 wrong codes (default %(default)g)",
    )


def load_backend() -> CloakBackend:
    """Load the engine once, before serving.

    Workers share the engine's ONNX Runtime sessions (`veil.modelstore` builds one per model
    file), and a session's intra-op thread pool is shared by concurrent `run` calls, so N
    workers add N calling threads, not N thread pools: the cores are not oversubscribed.
    """
    import onnxruntime

    # Kept as a second switch; the one that works is ORT_DISABLE_TELEMETRY (veil/__init__.py).
    onnxruntime.disable_telemetry_events()
    from veil.config import config_dir
    from veil.engine import Engine

    return EngineBackend(Engine.load(config_dir=config_dir()))


def run(args: argparse.Namespace) -> int:
    configure_logging(sys.stderr)  # redacted, line- and rate-bounded (veil.server.logs)
    if args.workers < 1 or args.queue < 0 or args.timeout <= 0 or args.body_timeout <= 0:
        print("veil serve: --workers must be >= 1, --queue >= 0, --timeout > 0", file=sys.stderr)
        return 2
    if args.max_video_seconds <= 0 or args.max_video_bytes <= 0:
        print("veil serve: --max-video-seconds and --max-video-bytes must be > 0", file=sys.stderr)
        return 2
    if args.enrol_steps < 1:
        print("veil serve: --enrol-steps must be >= 1", file=sys.stderr)
        return 2
    try:
        check_bind_address(args.host, allow_remote=args.allow_remote)
    except BindError as exc:  # before the models load: refuse at once
        print(f"veil serve: {exc}", file=sys.stderr)
        return 2
    if not is_loopback(args.host):
        print(
            "\n" + "!" * 78 + f"\nWARNING: listening on {args.host}, reachable from other "
            "machines. Anyone who can reach this port can try pairing codes and, once paired, "
            "send photos.\n" + "!" * 78 + "\n",
            file=sys.stderr,
        )
    config = ServerConfig(
        host=args.host,
        port=args.port,
        allow_remote=args.allow_remote,
        workers=args.workers,
        queue=args.queue,
        request_timeout_s=args.timeout,
        pairing_lock_s=args.pairing_lock_seconds,
        body_timeout_s=args.body_timeout,
        enrol_steps=args.enrol_steps,
        max_video_seconds=args.max_video_seconds,
        max_video_bytes=args.max_video_bytes,
        **(
            {"memory_budget_bytes": args.memory_budget_mb * 1024 * 1024}
            if args.memory_budget_mb
            else {}
        ),
    )
    print(f"veil serve: loading models ({config.workers} worker(s))...", file=sys.stderr)
    try:
        backend = load_backend()
    except VeilError as exc:
        print(f"veil serve: cannot load models: {exc.message}. Run `veil doctor`.", file=sys.stderr)
        return 1
    store = open_token_store(config.config_dir)
    try:
        paired = len(store.load())
    except VeilError as exc:  # a corrupt store: serve anyway, every token check says why
        print(f"veil serve: {exc.message}", file=sys.stderr)
        paired = 0
    print(
        f"veil serve: {paired} extension token(s) in the {store.description}"
        + ("" if paired else "; run `veil pair` to pair the browser extension"),
        file=sys.stderr,
    )
    try:
        asyncio.run(
            serve(
                config,
                backend,
                announce=lambda line: print(line, flush=True),
                token_store=store,  # already loaded: no keyring call on the first request
            )
        )
    except BindError as exc:
        print(f"veil serve: {exc}", file=sys.stderr)
        return 1
    return 0
