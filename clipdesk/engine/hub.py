"""The Hugging Face hub client, as clipdesk uses it: cached files, published hashes, progress, errors.

Knows nothing about model specs, so the registry, ``sources`` and ``weights``
can all use it. Whether the hub answers at all (``hub_reachable``) stays in
``weights``, which keeps the one per-process answer.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

from clipdesk.errors import Cancelled, ClipdeskError, ModelNotAvailable
from clipdesk.jobs import CancelToken
from clipdesk.paths import models_dir

# The names open_clip gives a model's weights in a hub repository; it tries the safetensors file first.
HUB_SAFE_WEIGHTS = "open_clip_model.safetensors"
HUB_WEIGHTS = "open_clip_pytorch_model.bin"


def cached_hub_file(repo: str, filename: str) -> Path | None:
    """``repo``'s ``filename`` in the models cache, if it is there (no network)."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo, filename, cache_dir=str(models_dir()))
    return Path(found) if isinstance(found, str) and os.path.isfile(found) else None


def published_sha256(repo: str, filename: str) -> str:
    """The SHA-256 the hub publishes for an LFS file (its ETag)."""
    from huggingface_hub import get_hf_file_metadata, hf_hub_url

    meta = get_hf_file_metadata(hf_hub_url(repo, filename))
    etag = (meta.etag or "").strip('"')
    if len(etag) != 64:
        raise ModelNotAvailable(f"The model hub published no SHA-256 for {repo}/{filename}, so it cannot be verified.")
    return etag


def progress_bar_class(on_progress: Callable[[int, int], None], cancel: CancelToken | None = None):
    """A tqdm class for the hub client that reports one monotonic figure to ``on_progress``.

    huggingface_hub builds bars from the class it is given: one per HTTP
    download (starting at ``initial`` when it resumes), and for Xet transfers
    one for bytes written plus one for bytes received, unless the class has
    ``update_transfer`` (then it uses one bar and sends the network bytes
    there). Received bytes are not the file's bytes (dedup, compression), so
    only written bytes count; whatever bars are made, the largest count is
    reported and the figure never goes backwards. Cancel is checked on every
    update; inside a Xet transfer the Rust side must be stopped too, so the
    session is aborted before raising.
    """
    from tqdm.auto import tqdm

    state = {"done": 0, "total": 0}

    class Progress(tqdm):
        def __init__(self, *args, **kwargs):
            kwargs["disable"] = True  # the callback is the display
            self._xet = "reconstructing" in str(kwargs.get("desc", "")) or "bar_format" in kwargs
            super().__init__(*args, **kwargs)
            self.count = int(kwargs.get("initial") or 0)  # a disabled tqdm stops counting, so count here
            self._report()

        def _check_cancel(self):
            if cancel is not None and cancel.checkpoint():
                if self._xet:
                    _abort_xet()
                raise Cancelled("Download cancelled.")

        def _report(self):
            total = int(getattr(self, "total", 0) or 0)
            state["total"] = max(state["total"], total)
            done = max(state["done"], min(self.count, state["total"] or self.count))
            if done != state["done"] or self.count == 0:
                state["done"] = done
                on_progress(done, state["total"])

        def update(self, n=1):
            self._check_cancel()
            self.count += int(n or 0)
            self._report()

        def update_transfer(self, n=1):  # network bytes of a Xet transfer: only a sign of life
            self._check_cancel()

        def set_transfer_postfix_str(self, *args, **kwargs):
            pass

    return Progress


def _abort_xet() -> None:
    try:
        from huggingface_hub.utils._xet import abort_xet_session
    except ImportError:
        return
    abort_xet_session()


@contextmanager
def hub_errors(repo: str):
    """Network failures become one plain sentence (not ``[Errno -2] Name or service not known``)."""
    from huggingface_hub.errors import EntryNotFoundError, HfHubHTTPError, LocalEntryNotFoundError, OfflineModeIsEnabled

    try:
        yield
    except LocalEntryNotFoundError as exc:  # offline and not in the cache (an EntryNotFoundError too)
        raise _unreachable(repo, exc) from exc
    except (Cancelled, ClipdeskError, EntryNotFoundError):
        raise
    except (OfflineModeIsEnabled, ConnectionError, TimeoutError, socket.gaierror) as exc:
        raise _unreachable(repo, exc) from exc
    except HfHubHTTPError as exc:
        raise ModelNotAvailable(f"The model hub refused the download of {repo}: {_reason(exc)}.") from exc
    except OSError as exc:
        if isinstance(exc, FileNotFoundError) or getattr(exc, "errno", None) is None:
            raise
        raise _unreachable(repo, exc) from exc
    except Exception as exc:  # httpx and friends: a transport error of some kind
        if type(exc).__module__.split(".")[0] in ("httpx", "httpx2", "httpcore", "httpcore2"):
            raise _unreachable(repo, exc) from exc
        raise


def _unreachable(repo: str, exc: BaseException) -> ModelNotAvailable:
    return ModelNotAvailable(f"The model hub can't be reached ({_reason(exc)}), so {repo} cannot be downloaded now. "
                             "Check the internet connection, or use a checkpoint file you already have.")


def _reason(exc: BaseException) -> str:
    return ((str(exc).splitlines() or [type(exc).__name__])[0] or type(exc).__name__)[:160]
