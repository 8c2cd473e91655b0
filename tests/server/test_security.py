"""Who gets in, pairing, limits and bad input, against a real `veil serve` with real models."""

from __future__ import annotations

import json
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from corpus import require_faces

from .companion import EXTENSION_ORIGIN, Companion, small_jpeg

LOCK_S = 3


@pytest.fixture(scope="module")
def companion(companion_factory: Callable[..., Companion]) -> Companion:
    require_faces()
    return companion_factory(
        "--workers", "1", "--queue", "2", "--pairing-lock-seconds", str(LOCK_S)
    )


@pytest.fixture(scope="module")
def photo() -> bytes:
    faces = require_faces()
    return small_jpeg(faces / "photos" / "Jennifer_Aniston" / "img3.jpg", long_side=320)


@pytest.fixture(scope="module")
def token(companion: Companion) -> str:
    return companion.pair()


def _png_header(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 4096)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def _gif(width: int, height: int) -> bytes:
    """A GIF whose header announces width x height (a decompression bomb when huge)."""
    screen = struct.pack("<HHBBB", width, height, 0x80, 0, 0)
    palette = b"\x00\x00\x00\xff\xff\xff"
    image = b"\x2c" + struct.pack("<HHHHB", 0, 0, width, height, 0)
    return b"GIF89a" + screen + palette + image + b"\x02\x02\x44\x01\x00\x3b"


def _assert_serving(companion: Companion, photo: bytes, token: str) -> None:
    assert companion.request("GET", "/v1/health").status == 200
    reply = companion.cloak(photo, token)
    assert reply.status == 200, reply.body[:200]


def test_health_answers_without_token(companion: Companion) -> None:
    reply = companion.request("GET", "/v1/health")
    assert reply.status == 200
    body = reply.json()
    assert body["name"] == "veil" and body["api"] == 1
    assert body["models"], "the loaded models are listed"
    assert isinstance(body["paired"], bool)


@pytest.mark.parametrize("host", ["evil.example:{port}", "127.0.0.1:1", "evil.example", ""])
def test_foreign_host_is_refused(companion: Companion, host: str) -> None:
    reply = companion.request(
        "GET", "/v1/health", headers={"Host": host.format(port=companion.port)}
    )
    assert (reply.status, reply.code) == (403, "forbidden_host")


@pytest.mark.parametrize("host", ["localhost:{port}", "[::1]:{port}", "LOCALHOST:{port}"])
def test_loopback_names_are_accepted(companion: Companion, host: str) -> None:
    reply = companion.request(
        "GET", "/v1/health", headers={"Host": host.format(port=companion.port)}
    )
    assert reply.status == 200


def test_web_origin_is_refused_everywhere(companion: Companion, token: str, photo: bytes) -> None:
    evil = {"Origin": "https://evil.example"}
    health = companion.request("GET", "/v1/health", headers=evil)
    cloak = companion.request(
        "POST",
        "/v1/cloak",
        body=photo,
        headers={**evil, "Authorization": f"Bearer {token}", "Content-Type": "image/jpeg"},
    )
    preflight = companion.request(
        "OPTIONS", "/v1/cloak", headers={**evil, "Access-Control-Request-Method": "POST"}
    )
    for reply in (health, cloak, preflight):
        assert (reply.status, reply.code) == (403, "forbidden_origin")
        assert "Access-Control-Allow-Origin" not in reply.headers


@pytest.mark.parametrize(
    "origin",
    ["null", "http://127.0.0.1:8000", "file://", "chrome-extension://", "chrome-extension://a/b"],
)
def test_other_origins_are_refused(companion: Companion, origin: str) -> None:
    reply = companion.request("GET", "/v1/health", headers={"Origin": origin})
    assert (reply.status, reply.code) == (403, "forbidden_origin")


def test_extension_preflight_and_cors_headers(companion: Companion) -> None:
    preflight = companion.request(
        "OPTIONS",
        "/v1/cloak",
        headers={
            "Origin": EXTENSION_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )
    assert preflight.status == 204
    assert preflight.headers["Access-Control-Allow-Origin"] == EXTENSION_ORIGIN
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]


@pytest.mark.parametrize(
    "authorization", [None, "Bearer ", "Bearer veil_not-a-real-token", "Basic dXNlcjpwYXNz"]
)
def test_cloak_without_valid_token_is_401(
    companion: Companion, photo: bytes, authorization: str | None
) -> None:
    headers = {"Content-Type": "image/jpeg"}
    if authorization is not None:
        headers["Authorization"] = authorization
    reply = companion.request("POST", "/v1/cloak", body=photo, headers=headers)
    assert (reply.status, reply.code) == (401, "unauthorized")
    assert reply.headers["WWW-Authenticate"].startswith("Bearer")


def test_cloak_real_photo(companion: Companion, token: str, photo: bytes) -> None:
    reply = companion.request(
        "POST",
        "/v1/cloak?mode=mid&keep_metadata=false",
        body=photo,
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "image/jpeg",
            "Origin": EXTENSION_ORIGIN,
        },
    )
    assert reply.status == 200, reply.body[:300]
    assert reply.headers["Content-Type"] == "image/jpeg"
    assert int(reply.headers["X-Veil-Faces"]) >= 1
    assert 0.5 < float(reply.headers["X-Veil-SSIM"]) <= 1.0
    assert 0.0 < float(reply.headers["X-Veil-Face-SSIMULACRA2"]) < 100.0
    assert float(reply.headers["X-Veil-Seconds"]) > 0
    assert reply.body[:2] == b"\xff\xd8" and reply.body != photo
    assert reply.headers["Access-Control-Allow-Origin"] == EXTENSION_ORIGIN
    assert "X-Veil-Faces" in reply.headers["Access-Control-Expose-Headers"]
    assert "X-Veil-Face-SSIMULACRA2" in reply.headers["Access-Control-Expose-Headers"]


def test_pairing_code_is_single_use_and_token_bound_to_origin(companion: Companion) -> None:
    code = companion.new_code()
    body = json.dumps({"code": code, "client": "pytest"}).encode()
    headers = {"Content-Type": "application/json", "Origin": EXTENSION_ORIGIN}
    first = companion.request("POST", "/v1/pair", body=body, headers=headers)
    replay = companion.request("POST", "/v1/pair", body=body, headers=headers)
    assert first.status == 200 and first.json()["origin"] == EXTENSION_ORIGIN
    assert (replay.status, replay.code) == (403, "pairing_code_invalid")
    token = first.json()["token"]
    auth = {"Authorization": f"Bearer {token}"}
    assert companion.request("GET", "/v1/token", headers={**auth, **headers}).status == 200
    other = {**auth, "Origin": "chrome-extension://ponmlkjihgfedcbaponmlkjihgfedcba"}
    reply = companion.request("GET", "/v1/token", headers=other)
    assert (reply.status, reply.code) == (403, "forbidden_origin")


def test_doctor_reports_server_store_and_pairing(companion: Companion, token: str) -> None:
    report = companion.cli("doctor", "--port", str(companion.port))
    assert f"answers on 127.0.0.1:{companion.port}" in report
    assert "fallback: token digests kept in" in report  # VEIL_TOKEN_STORE=file
    assert EXTENSION_ORIGIN in report and "token(s)" in report
    assert token not in report


def test_token_revoked_by_self_then_refused(companion: Companion, photo: bytes) -> None:
    token = companion.pair()
    auth = {"Authorization": f"Bearer {token}", "Origin": EXTENSION_ORIGIN}
    assert companion.request("POST", "/v1/unpair", headers=auth).json()["revoked"] is True
    assert companion.request("GET", "/v1/token", headers=auth).status == 401
    assert companion.cloak(photo, token).code == "unauthorized"


def test_bad_query_and_routing_errors_are_json(companion: Companion, token: str) -> None:
    bad_mode = companion.cloak(b"x", token, query="mode=ultra")
    assert (bad_mode.status, bad_mode.code) == (400, "bad_request")
    bad_flag = companion.cloak(b"x", token, query="keep_metadata=maybe")
    assert (bad_flag.status, bad_flag.code) == (400, "bad_request")
    missing = companion.request("GET", "/v2/anything")
    assert (missing.status, missing.code) == (404, "not_found")
    wrong = companion.request("GET", "/v1/cloak")
    assert (wrong.status, wrong.code) == (405, "method_not_allowed")
    assert "POST" in wrong.headers["Allow"]
    garbled = companion.request(
        "POST", "/v1/pair", body=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert (garbled.status, garbled.code) == (400, "bad_request")


def _bad_inputs(photo: bytes) -> list[tuple[str, bytes, str, int, str]]:
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect/></svg>'
    return [
        ("truncated jpeg", photo[: len(photo) // 3], "image/jpeg", 422, "corrupt_image"),
        ("zero bytes", b"", "image/jpeg", 422, "corrupt_image"),
        (
            "text as jpeg",
            b"hello, this is not a photo\n" * 20,
            "image/jpeg",
            415,
            "unsupported_format",
        ),
        ("text/plain", b"hello", "text/plain", 415, "unsupported_format"),
        ("svg", svg, "image/svg+xml", 415, "unsupported_format"),
        # GIFs are cloaked frame by frame (veil.animated); this one's image data is cut short.
        ("damaged gif", _gif(16, 16), "image/gif", 422, "corrupt_image"),
        # Refused from its header (the canvas alone), before any frame is decoded.
        ("gif bomb", _gif(65535, 65535), "image/gif", 413, "image_too_large"),
    ]


def test_bad_inputs_get_the_right_code_and_server_keeps_serving(
    companion: Companion, token: str, photo: bytes
) -> None:
    outcomes = {}
    for name, data, content_type, _status, _code in _bad_inputs(photo):
        started = time.perf_counter()
        reply = companion.cloak(data, token, content_type=content_type)
        assert time.perf_counter() - started < 2.0, f"{name} was not refused quickly"
        outcomes[name] = (reply.status, reply.code)
    expected = {name: (status, code) for name, _d, _t, status, code in _bad_inputs(photo)}
    assert outcomes == expected
    _assert_serving(companion, photo, token)


def test_pixel_bomb_png_is_refused_from_the_header(companion: Companion, token: str) -> None:
    started = time.perf_counter()
    reply = companion.cloak(_png_header(100_000, 100_000), token, content_type="image/png")
    elapsed = time.perf_counter() - started
    assert (reply.status, reply.code) == (413, "image_too_large")
    assert elapsed < 2.0, f"header check took {elapsed:.2f} s"


def _raw_request_head(companion: Companion, token: str, extra: str) -> bytes:
    return (
        f"POST /v1/cloak HTTP/1.1\r\nHost: {companion.host}\r\n"
        f"Authorization: Bearer {token}\r\nContent-Type: image/jpeg\r\n{extra}\r\n"
    ).encode()


def _read_response(sock: socket.socket) -> tuple[int, str | None]:
    """Status and error code of one HTTP response read from a raw socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise AssertionError(f"connection closed before a full response: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    fields = dict(line.split(": ", 1) for line in lines[1:])
    length = int(fields.get("Content-Length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return int(lines[0].split(" ")[1]), json.loads(body)["error"]["code"] if body else None


def test_60mb_body_refused_before_it_is_sent(companion: Companion, token: str) -> None:
    """Content-Length over 50 MB: the 413 comes back although not one body byte was sent."""
    with socket.create_connection(("127.0.0.1", companion.port), timeout=10) as sock:
        started = time.perf_counter()
        sock.sendall(_raw_request_head(companion, token, f"Content-Length: {60 * 1024 * 1024}\r\n"))
        status, code = _read_response(sock)
        elapsed = time.perf_counter() - started
    assert (status, code) == (413, "payload_too_large")
    assert elapsed < 2.0, f"took {elapsed:.2f} s"


def test_expect_continue_is_answered_413_for_an_oversized_body(
    companion: Companion, token: str
) -> None:
    """curl-style `Expect: 100-continue`: the final 413 replaces the 100, so nothing is sent."""
    head = f"Content-Length: {60 * 1024 * 1024}\r\nExpect: 100-continue\r\n"
    with socket.create_connection(("127.0.0.1", companion.port), timeout=10) as sock:
        sock.sendall(_raw_request_head(companion, token, head))
        assert _read_response(sock) == (413, "payload_too_large")


def test_chunked_body_cut_off_at_the_limit(companion: Companion, token: str) -> None:
    """No Content-Length: the server reads up to the 50 MB limit, then answers 413."""
    limit = 50 * 1024 * 1024
    chunk = b"\xff" * (1024 * 1024)
    framed = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
    sent = 0
    answered = threading.Event()

    def send_body(sock: socket.socket) -> None:
        nonlocal sent
        try:
            while sent < 60 * 1024 * 1024 and not answered.is_set():
                sock.sendall(framed)
                sent += len(chunk)
        except OSError:
            pass  # the server closed the connection after its 413: expected

    with socket.create_connection(("127.0.0.1", companion.port), timeout=30) as sock:
        sock.sendall(_raw_request_head(companion, token, "Transfer-Encoding: chunked\r\n"))
        sender = threading.Thread(target=send_body, args=(sock,))
        sender.start()
        try:
            status, code = _read_response(sock)
        finally:
            answered.set()
            sent_when_answered = sent
            sock.shutdown(socket.SHUT_RDWR)
            sender.join(timeout=30)
    assert (status, code) == (413, "payload_too_large")
    # Socket buffers hold a few MB; the server stopped near the limit, not at the end of 60 MB.
    assert limit <= sent_when_answered + 8 * 1024 * 1024
    assert sent_when_answered <= limit + 16 * 1024 * 1024


def test_unpair_cli_revokes_tokens_of_a_running_server(companion: Companion, photo: bytes) -> None:
    token = companion.pair()
    auth = {"Authorization": f"Bearer {token}"}
    assert companion.request("GET", "/v1/token", headers=auth).status == 200
    assert "Revoked" in companion.cli("unpair")
    assert companion.request("GET", "/v1/token", headers=auth).status == 401
    assert companion.cloak(photo, token).code == "unauthorized"
    assert companion.request("GET", "/v1/health").json()["paired"] is False


# Pairing-code expiry and the wrong-code lock are timed by an injected clock in
# test_app.py (in process), not by sleeping here.


def test_logs_and_disk_hold_no_secrets_or_photos(companion: Companion, token: str) -> None:
    log = companion.log()
    assert "POST /v1/cloak" in log, "the access log is written"
    assert token not in log and "Bearer" not in log
    assert "mode=" not in log and "keep_metadata" not in log, "no query strings in the log"
    # ONNX Runtime drops a telemetry session id (.ses) in TMPDIR on import: not ours, not a photo.
    assert set(os.listdir(companion.tmp_dir)) == companion.tmp_baseline, "no temporary files"
    assert {p.name for p in companion.config_dir.iterdir()} <= {
        "tokens.json",
        "tokens.lock",
        "pairing.json",
        "video-spool",
    }
    # The video spool (veil.server.spool) holds only the running server's lock: no upload,
    # no output was left behind.
    spooled = {p.name for p in (companion.config_dir / "video-spool").rglob("*") if p.is_file()}
    assert spooled <= {".lock"}
    assert oct((companion.config_dir / "tokens.json").stat().st_mode & 0o777) == "0o600"


def test_serve_refuses_a_non_loopback_address(companion: Companion) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "veil.cli", "serve", "--host", "0.0.0.0", "--port", "0"],
        env=companion.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2
    assert "--allow-remote" in refused.stderr


def test_serve_refuses_to_start_without_models(companion: Companion, tmp_path: Path) -> None:
    refused = subprocess.run(
        [sys.executable, "-m", "veil.cli", "serve", "--port", "0"],
        env={**companion.env, "VEIL_MODELS_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 1
    assert "cannot load models" in refused.stderr and "veil doctor" in refused.stderr
