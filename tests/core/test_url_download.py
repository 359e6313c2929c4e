"""Plain-URL checkpoint downloads against a real local HTTP server: resume, cancel, record, verify."""

from __future__ import annotations

import hashlib
import json
import random
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from clipdesk.engine.url_download import RECORDS_FILE, download_url, recorded
from clipdesk.engine.weights import ChecksumMismatch
from clipdesk.errors import Cancelled, ModelNotAvailable
from clipdesk.jobs import CancelToken
from clipdesk.paths import models_dir

PAYLOAD = random.Random(7).randbytes(3_000_000)
N = len(PAYLOAD)
CHUNK = 256 * 1024
K = 1_000_000  # where a dropped connection leaves the part
NAME = "MCIP-test.pth"
STALL = 1.0  # seconds a stalled server stays quiet; the client's timeout is shorter


class _Handler(BaseHTTPRequestHandler):
    """Serves ``server.payload`` with Range support, or whatever failure the server is switched to."""

    def do_GET(self):
        srv = self.server
        rng = self.headers.get("Range")
        srv.requests.append(rng)
        if srv.status:
            self.send_error(srv.status)
            return
        data, start = srv.payload, 0
        etag = '"' + hashlib.sha256(data).hexdigest()[:16] + '"'
        srv.if_ranges.append(self.headers.get("If-Range"))
        if rng and self.headers.get("If-Range") not in (None, etag):
            rng = None  # RFC 9110: the file changed since the part began, so send all of the new one (200)
        if rng and not srv.ignore_range:
            start = int(rng.removeprefix("bytes=").removesuffix("-"))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("ETag", etag)
        if not srv.no_length:  # without it the body ends when HTTP/1.0 closes the connection
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if srv.drop_after is not None:  # one-shot: the handler returns and HTTP/1.0 closes the socket
            body, srv.drop_after = body[:srv.drop_after], None
        try:
            if srv.stall_after is not None:  # one-shot: send part of the body, then go quiet
                head, srv.stall_after = body[:srv.stall_after], None
                self.wfile.write(head)
                time.sleep(STALL)
                return
            # Counted before writing: the client can finish reading before this thread runs another line.
            srv.sent += len(body)
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the client cancelled
            pass

    def log_message(self, *args):
        pass


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.payload = PAYLOAD
        self.ignore_range = False
        self.no_length = False
        self.drop_after: int | None = None
        self.stall_after: int | None = None
        self.status: int | None = None
        self.requests: list[str | None] = []  # the Range header of each request
        self.if_ranges: list[str | None] = []  # the If-Range header of each request
        self.sent = 0  # body bytes written

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_port}/files/MCIP/{NAME}"


@pytest.fixture
def server():
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(5)


@pytest.fixture
def target():
    models_dir().mkdir(parents=True)
    return models_dir() / NAME


def _part(target):
    return target.with_name(target.name + ".part")


def _get(server, target, cancel=None):
    calls: list[tuple[int, int]] = []
    result = download_url(server.url, target, lambda d, t: calls.append((d, t)), cancel, timeout=5, chunk_size=CHUNK)
    return result, calls


def _assert_progress(calls, total):
    dones = [d for d, _ in calls]
    assert all(t == total for _, t in calls)
    assert dones == sorted(dones) and max(dones) <= total
    assert calls[-1] == (total, total)


def test_progress_check_rejects_bad_sequences():
    _assert_progress([(0, N), (CHUNK, N), (N, N)], N)
    for bad in ([(0, N), (CHUNK, N), (10, N), (N, N)], [(0, N), (N + 1, N), (N, N)], [(0, N), (CHUNK, N)]):
        with pytest.raises(AssertionError):
            _assert_progress(bad, N)


def test_first_download_records_size_and_hash(server, target):
    result, calls = _get(server, target)
    sha = hashlib.sha256(PAYLOAD).hexdigest()
    assert target.read_bytes() == PAYLOAD and not _part(target).exists()
    record = recorded(server.url)
    assert record["size"] == N and record["sha256"] == sha and record["file"] == NAME and record["url"] == server.url
    assert record["recorded_at"]
    assert (result.path, result.size, result.sha256, result.first_download) == (target, N, sha, True)
    assert "no checksum" in result.note and f"{N:,}" in result.note and sha[:8] in result.note
    assert "\n" not in result.note
    _assert_progress(calls, N)
    assert len(calls) >= N // CHUNK  # one call per chunk, not just start and end
    # Keyed by URL, atomically written (no temporary file left behind).
    assert set(json.loads((models_dir() / RECORDS_FILE).read_text())) == {server.url}
    assert sorted(p.name for p in models_dir().iterdir()) == sorted([NAME, RECORDS_FILE])
    assert recorded(server.url + "?other") is None
    assert recorded(server.url, models=target.parent / "elsewhere") is None


def test_an_interrupted_download_resumes(server, target):
    server.drop_after = K
    with pytest.raises(ModelNotAvailable) as err:
        _get(server, target)
    message = str(err.value)
    assert "\n" not in message and NAME in message and f"{K:,} of {N:,}" in message
    assert _part(target).stat().st_size == K and not target.exists()
    assert recorded(server.url) is None

    server.sent = 0
    result, calls = _get(server, target)
    assert server.requests[-1] == f"bytes={K}-"
    assert server.sent == N - K  # control: a restart would have sent all N bytes
    assert calls[0][0] >= K
    _assert_progress(calls, N)
    assert target.read_bytes() == PAYLOAD and result.first_download


def test_a_stalled_connection_times_out_and_resumes(server, target):
    server.stall_after = K
    with pytest.raises(ModelNotAvailable, match="timed out") as err:
        download_url(server.url, target, lambda d, t: None, timeout=0.3, chunk_size=CHUNK)
    assert "\n" not in str(err.value) and NAME in str(err.value)
    kept = _part(target).stat().st_size
    assert 0 < kept <= K and not target.exists()
    _get(server, target)
    assert server.requests[-1] == f"bytes={kept}-" and target.read_bytes() == PAYLOAD


def test_a_server_ignoring_range_restarts_from_zero(server, target):
    server.drop_after = K
    with pytest.raises(ModelNotAvailable):
        _get(server, target)
    server.ignore_range = True
    result, calls = _get(server, target)
    assert server.requests[-1] == f"bytes={K}-"  # control: the client did ask to resume
    assert calls[0] == (0, N)
    _assert_progress(calls, N)
    assert target.read_bytes() == PAYLOAD  # appending the 200 body to the part would make it K bytes longer
    assert result.sha256 == hashlib.sha256(PAYLOAD).hexdigest()


def test_cancel_keeps_the_part_and_the_next_call_resumes(server, target):
    token = CancelToken()

    def on_progress(done, total):
        if done > 0:
            token.cancel()

    with pytest.raises(Cancelled, match="Download cancelled."):
        download_url(server.url, target, on_progress, token, timeout=5, chunk_size=CHUNK)
    kept = _part(target).stat().st_size
    assert kept == CHUNK and not target.exists() and recorded(server.url) is None

    result, calls = _get(server, target, CancelToken())  # control: a live token lets it finish
    assert server.requests[-1] == f"bytes={kept}-"
    assert calls[0][0] == kept
    assert target.read_bytes() == PAYLOAD and result.first_download


def test_an_unknown_size_reports_zero_total_then_the_size(server, target):
    server.no_length = True
    result, calls = _get(server, target)
    assert target.read_bytes() == PAYLOAD and result.size == N
    assert all(t == 0 for _, t in calls[:-1]) and calls[-1] == (N, N)


def test_a_complete_part_is_finished_on_416(server, target):
    _part(target).write_bytes(PAYLOAD)  # as if the app stopped between download and rename
    result, calls = _get(server, target)
    assert server.requests == [f"bytes={N}-"] and server.sent == 0
    assert calls[-1] == (N, N) and target.read_bytes() == PAYLOAD and result.first_download


def test_a_part_longer_than_the_file_is_restarted_on_416(server, target):
    _part(target).write_bytes(PAYLOAD + b"extra")
    result, calls = _get(server, target)
    assert server.requests == [f"bytes={N + 5}-", None]
    _assert_progress(calls, N)
    assert target.read_bytes() == PAYLOAD


@pytest.mark.parametrize("old_target", [None, b"an older, shorter copy"], ids=["absent", "present"])
@pytest.mark.parametrize("changed", ["same-length", "other-length"])
def test_a_changed_file_is_refused(server, target, old_target, changed):
    _get(server, target)
    record = recorded(server.url)
    records_text = (models_dir() / RECORDS_FILE).read_text()
    if old_target is None:
        target.unlink()
    else:
        target.write_bytes(old_target)
    server.payload = PAYLOAD[:-1] + b"\x00" if changed == "same-length" else PAYLOAD + b"more"
    if server.payload == PAYLOAD:  # the seeded payload might end in a zero byte
        server.payload = PAYLOAD[:-1] + b"\x01"

    with pytest.raises(ChecksumMismatch) as err:
        _get(server, target)
    message = str(err.value)
    assert err.value.exit_code == 3 and "\n" not in message and NAME in message
    if changed == "same-length":
        assert record["sha256"][:12] in message and hashlib.sha256(server.payload).hexdigest()[:12] in message
    else:
        assert f"{N:,}" in message and f"{N + 4:,}" in message
    assert not _part(target).exists()
    assert (target.read_bytes() if target.exists() else None) == old_target
    assert recorded(server.url) == record and (models_dir() / RECORDS_FILE).read_text() == records_text

    server.payload = PAYLOAD  # control: the original file still passes
    result, _ = _get(server, target)
    assert target.read_bytes() == PAYLOAD and not result.first_download and "matches" in result.note


def test_a_recorded_target_is_not_downloaded_again(server, target):
    _get(server, target)
    seen = len(server.requests)
    result, calls = _get(server, target)
    assert len(server.requests) == seen and calls == []
    assert not result.first_download and result.size == N and "\n" not in result.note

    target.write_bytes(PAYLOAD[:10])  # control: a wrong size is downloaded again
    _get(server, target)
    assert len(server.requests) == seen + 1 and target.read_bytes() == PAYLOAD


@pytest.mark.parametrize(("status", "expected"), [(404, "no file at"), (500, "HTTP 500")])
def test_http_errors_keep_the_part(server, target, status, expected):
    _part(target).write_bytes(PAYLOAD[:K])
    server.status = status
    with pytest.raises(ModelNotAvailable) as err:
        _get(server, target)
    message = str(err.value)
    assert expected in message and NAME in message and "\n" not in message
    assert _part(target).read_bytes() == PAYLOAD[:K] and not target.exists()


def test_an_unreachable_host_is_one_plain_line(target):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _part(target).write_bytes(b"partial")
    with pytest.raises(ModelNotAvailable) as err:
        download_url(f"http://127.0.0.1:{port}/{NAME}", target, lambda d, t: None, timeout=2)
    message = str(err.value)
    assert "\n" not in message and NAME in message and "can't be reached" in message and str(models_dir()) in message
    assert _part(target).read_bytes() == b"partial"


def test_a_file_replaced_between_attempts_is_not_spliced_onto_the_old_part(server, target):
    server.drop_after = K
    with pytest.raises(ModelNotAvailable):
        _get(server, target)
    assert _part(target).stat().st_size == K
    new = random.Random(8).randbytes(N)  # the publisher replaced the file meanwhile
    server.payload = new
    _get(server, target)
    assert server.requests[-1] == f"bytes={K}-" and server.if_ranges[-1] is not None  # resumed, conditionally
    assert target.read_bytes() == new  # the whole new file, not old[:K] + new[K:]
    assert recorded(server.url)["sha256"] == hashlib.sha256(new).hexdigest()
