"""Downloading a checkpoint published only at a plain URL, resumable and verified.

Some authors (MCIP, for one) put weights on their own web server and publish
no hash. The first complete download is therefore trusted and recorded (size
and SHA-256, in ``url-downloads.json`` in the models dir); the user is told so,
and every later download of that URL must match the record. The file is only
moved here, never opened as a checkpoint.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from http.client import HTTPException
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urlsplit

from clipdesk.engine.digest import ChecksumMismatch, sha256_file
from clipdesk.errors import Cancelled, ModelNotAvailable
from clipdesk.jobs import CancelToken
from clipdesk.paths import models_dir

RECORDS_FILE = "url-downloads.json"
USER_AGENT = "clipdesk"
_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)")
_UNSATISFIED = re.compile(r"bytes\s+\*/(\d+)")
# Read-modify-write of the records file; two downloads in one process must not drop each other's record.
_records_lock = threading.Lock()


@dataclass(frozen=True)
class DownloadResult:
    path: Path
    size: int
    sha256: str
    first_download: bool  # this download created the record: there was nothing to check it against
    note: str  # one sentence for the user


def recorded(url: str, models: Path | None = None) -> dict | None:
    """The record ``{"url", "file", "size", "sha256", "recorded_at"}`` of ``url``'s first download, if any."""
    record = _load_records(models or models_dir()).get(url)
    return dict(record) if isinstance(record, dict) else None


def download_url(url: str, target: Path, on_progress: Callable[[int, int], None], cancel: CancelToken | None = None,
                 *, timeout: float = 30.0, chunk_size: int = 1 << 20) -> DownloadResult:
    """Download ``url`` to ``target`` through ``target.part``, resuming a partial file, and verify it.

    Args:
        url: Plain http(s) address of the file.
        target: Where the finished file goes; its directory is created.
        on_progress: Called with ``(done_bytes, total_bytes)``; total is 0 when the server does not say.
        cancel: Checked between chunks; pausing it pauses the download.
        timeout: Seconds to wait for the connection and for each read.
        chunk_size: Bytes read between progress calls.

    Returns:
        The finished file, its size and SHA-256, and a note saying what it was checked against.

    Raises:
        ModelNotAvailable: The server cannot be reached, refuses, or the body ends early (the part is kept).
        ChecksumMismatch: Size or SHA-256 differ from the record of the first download (the part is deleted).
        Cancelled: ``cancel`` was set (the part is kept for resuming).
    """
    target = Path(target)
    record = recorded(url)
    # Size only: hashing a 3.5 GB file on every start would make the app crawl; the hash was checked when it arrived.
    if record and target.is_file() and target.stat().st_size == record["size"]:
        return DownloadResult(target, record["size"], record["sha256"], False,
                              f"{target.name} is already downloaded; its size matches the first download's record.")
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    _stop_if_cancelled(cancel)
    _fetch(url, target, part, record, on_progress, cancel, timeout, chunk_size)
    return _finish(url, target, part, record, cancel)


def _fetch(url, target, part, record, on_progress, cancel, timeout, chunk_size) -> None:
    for _ in range(2):  # a second pass only after a partial file that did not fit was thrown away
        offset = part.stat().st_size if part.exists() else 0
        headers = {"User-Agent": USER_AGENT} | ({"Range": f"bytes={offset}-"} if offset else {})
        validator = _validator(part) if offset else None
        if validator:
            # If-Range: the rest of the same file, or (206 would be wrong) the whole new one as a 200, which
            # starts the part over; without it a file replaced meanwhile would be spliced onto the old part.
            headers["If-Range"] = validator
        try:
            resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
        except HTTPError as exc:
            exc.close()
            if exc.code != 416 or not offset:
                raise _unavailable(url, target, exc) from exc
            # 416: nothing is left after ``offset``; the part is complete if it is exactly as long as the file.
            match = _UNSATISFIED.search(exc.headers.get("Content-Range") or "")
            total = int(match.group(1)) if match else (record or {}).get("size", 0)
            if total and offset == total:
                on_progress(total, total)
                return
            part.unlink()
            continue
        except (OSError, HTTPException) as exc:
            raise _unavailable(url, target, exc) from exc
        with resp:
            start, total = 0, int(resp.headers.get("Content-Length") or 0)
            if resp.status == 206:
                match = _RANGE.search(resp.headers.get("Content-Range") or "")
                if not match or int(match.group(1)) != offset:
                    part.unlink(missing_ok=True)
                    continue
                start, total = offset, 0 if match.group(3) == "*" else int(match.group(3))
            if record and total and total != record["size"]:
                # The server announces another size: fail now rather than after gigabytes.
                part.unlink(missing_ok=True)
                raise _mismatch(target, record, total, None)
            if not start:
                _save_validator(part, resp.headers.get("ETag") or resp.headers.get("Last-Modified"))
            _stream(resp, url, target, part, start, total, on_progress, cancel, chunk_size)
            return
    raise ModelNotAvailable(f"Cannot download {target.name}: {_host(url)} answers a resume request with the wrong "
                            f"part of the file; delete {part} and try again.")


def _stream(resp, url, target, part, start, total, on_progress, cancel, chunk_size) -> None:
    done = start
    on_progress(done, total)
    # A 200 to a Range request means the server ignored it: "wb" starts the part over, and so does ``done``.
    with open(part, "ab" if start else "wb") as fh:
        while True:
            _stop_if_cancelled(cancel)
            try:
                chunk = resp.read(chunk_size)
            except (OSError, HTTPException) as exc:
                raise _broke(url, target, done, total, exc) from exc
            if not chunk:
                break
            fh.write(chunk)
            done += len(chunk)
            on_progress(done, total)
    if total and done < total:
        raise _broke(url, target, done, total, "the server closed it early")
    if total and done > total:
        part.unlink()
        raise ModelNotAvailable(f"{_host(url)} sent {done:,} bytes for {target.name} instead of the {total:,} it "
                                "announced; the partial file was deleted, try again.")
    on_progress(done, done)


def _finish(url: str, target: Path, part: Path, record: dict | None, cancel: CancelToken | None) -> DownloadResult:
    size, sha = part.stat().st_size, sha256_file(part, cancel)
    if record:
        if size != record["size"] or sha != record["sha256"]:
            part.unlink(missing_ok=True)
            raise _mismatch(target, record, size, sha)
        note = f"{target.name} matches the size and SHA-256 recorded at its first download."
    else:
        _save_record(url, {"url": url, "file": target.name, "size": size, "sha256": sha,
                           "recorded_at": datetime.now(UTC).isoformat(timespec="seconds")})
        note = (f"The authors publish no checksum: recorded size {size:,} bytes and SHA-256 {sha[:8]}…{sha[-4:]} "
                "at this first download; later downloads are checked against it.")
    # Recorded before the rename: a crash in between leaves a complete part that the next call resumes to a 416.
    os.replace(part, target)
    _validator_file(part).unlink(missing_ok=True)
    return DownloadResult(target, size, sha, record is None, note)


def _mismatch(target: Path, record: dict, size: int, sha: str | None):
    what = [f"{size:,} bytes, recorded {record['size']:,}"] if size != record["size"] else []
    what += [f"SHA-256 {sha[:12]}…, recorded {record['sha256'][:12]}…"] if sha else []
    return ChecksumMismatch(f"{target.name} differs from the copy recorded at its first download ({'; '.join(what)}) "
                            "and was deleted: the file at that address has changed, or the download was damaged. "
                            f"If its publishers replaced it on purpose, remove its entry from {RECORDS_FILE} in "
                            f"{target.parent} and download it again.")


def _unavailable(url: str, target: Path, exc: BaseException) -> ModelNotAvailable:
    host, name, where = _host(url), target.name, target.parent
    if isinstance(exc, HTTPError) and exc.code == 404:
        return ModelNotAvailable(f"Cannot download {name}: {host} has no file at {url} (HTTP 404). Check the "
                                 f"address, or put the file in {where} yourself.")
    if isinstance(exc, HTTPError):
        return ModelNotAvailable(f"Cannot download {name}: {host} answered HTTP {exc.code} {_one_line(exc.reason)}. "
                                 f"Try again later, or put the file in {where} yourself.")
    reason = _one_line(getattr(exc, "reason", None) or exc) or type(exc).__name__
    return ModelNotAvailable(f"Cannot download {name}: {host} can't be reached ({reason}). Check the internet "
                             f"connection, or put the file in {where} yourself.")


def _broke(url: str, target: Path, done: int, total: int, why: object) -> ModelNotAvailable:
    of = f"{done:,} of {total:,}" if total else f"{done:,}"
    why = _one_line(why) or type(why).__name__
    return ModelNotAvailable(f"Cannot download {target.name}: the connection to {_host(url)} broke at {of} bytes "
                             f"({why}). Check the internet connection and try again to continue, or put the file in "
                             f"{target.parent} yourself.")


def _validator_file(part: Path) -> Path:
    return part.with_name(part.name + ".validator")


def _validator(part: Path) -> str | None:
    try:
        return _validator_file(part).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def _save_validator(part: Path, value: str | None) -> None:
    """The ETag (or Last-Modified) of the response a part started from, for If-Range when resuming it."""
    path = _validator_file(part)
    if value:
        path.write_text(value, encoding="utf-8")
    else:
        path.unlink(missing_ok=True)


def _stop_if_cancelled(cancel: CancelToken | None) -> None:
    if cancel is not None and cancel.checkpoint():
        raise Cancelled("Download cancelled.")


def _host(url: str) -> str:
    return urlsplit(url).hostname or url


def _one_line(text: object) -> str:
    return " ".join(str(text).split())[:200]


def _load_records(models: Path) -> dict:
    try:
        data = json.loads((models / RECORDS_FILE).read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        # A missing or unreadable file means no record: the next download records again rather than failing forever.
        return {}
    return data if isinstance(data, dict) else {}


def _save_record(url: str, record: dict) -> None:
    models = models_dir()
    models.mkdir(parents=True, exist_ok=True)
    with _records_lock:
        records = _load_records(models) | {url: record}
        fd, tmp = tempfile.mkstemp(prefix=RECORDS_FILE, suffix=".tmp", dir=models)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(records, fh, indent=2, sort_keys=True)
            os.replace(tmp, models / RECORDS_FILE)  # readers see the old file or the new one, never half of it
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
