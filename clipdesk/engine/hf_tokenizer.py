"""Hugging Face hub tokenizers (SigLIP's T5 vocabulary and the like) without ``transformers``.

open_clip tokenizes a model whose text config names ``hf_tokenizer_name`` with
``HFTokenizer``: ``transformers.AutoTokenizer`` then
``tokenizer(texts, max_length=n, padding="max_length", truncation=True)``.
The packaged app ships neither transformers nor torch, and the tokenizer
files come from the hub on first load. Those files are a ``tokenizers``
pipeline (``tokenizer.json``) plus two small JSON files naming the special
tokens, so this module reads them with ``tokenizers`` alone, cleans text as
open_clip does, and pads and truncates the way transformers asks
``tokenizers`` to (Immich's ML server does the same for its SigLIP models).

Only open_clip's standard mode is reproduced; its ``clips`` mode is refused.
"""

from __future__ import annotations

import html
import json
import logging
import re
import string
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from clipdesk.errors import ModelNotAvailable

log = logging.getLogger(__name__)

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")
REQUIRED = TOKENIZER_FILES[0]
# "owner/name", or a legacy top-level name such as "bert-base-uncased".
_REPO_ID = re.compile(r"[\w.-]+(/[\w.-]+)?")
_PUNCTUATION = str.maketrans("", "", string.punctuation)


class TokenizerNotAvailable(ModelNotAvailable, FileNotFoundError):
    """A tokenizer file is neither in the folder nor in the model cache."""


def basic_clean(text: str) -> str:
    import ftfy

    return html.unescape(html.unescape(ftfy.fix_text(text))).strip()


def whitespace_clean(text: str) -> str:
    return " ".join(text.split()).strip()


def canonicalize_text(text: str) -> str:
    """big_vision's canonicalisation, as open_clip has it: no punctuation or underscores, lower case."""
    text = text.replace("_", " ").translate(_PUNCTUATION).lower()
    return " ".join(text.split()).strip()


def _clean_whitespace(text: str) -> str:
    return whitespace_clean(basic_clean(text))


def _clean_lower(text: str) -> str:
    return whitespace_clean(basic_clean(text)).lower()


def _clean_canonicalize(text: str) -> str:
    return canonicalize_text(basic_clean(text))


CLEANERS: dict[str, Callable[[str], str]] = {
    "whitespace": _clean_whitespace, "lower": _clean_lower, "canonicalize": _clean_canonicalize}


def fetch_tokenizer_files(repo: str, cache_dir: str, download=None) -> Path:
    """Download ``repo``'s tokenizer files into the hub cache; returns the snapshot folder.

    ``download(repo, filename, cache_dir=...)`` defaults to ``hf_hub_download``;
    tests pass their own. Only ``tokenizer.json`` is required: a repository
    without one of the JSON configs is fine (the hub client then records the
    absence in the cache, which ``cached_tokenizer_dir`` reads).
    """
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    if download is None:
        from huggingface_hub import hf_hub_download as download
    try:
        folder = Path(download(repo, REQUIRED, cache_dir=cache_dir)).parent
    except EntryNotFoundError as exc:
        raise TokenizerNotAvailable(f"Cannot get the tokenizer of {repo}: {REQUIRED} is neither on the model hub "
                                    f"nor in the model cache {cache_dir} ({type(exc).__name__}).") from exc
    for name in TOKENIZER_FILES[1:]:
        try:
            download(repo, name, cache_dir=cache_dir)
        except LocalEntryNotFoundError:
            raise  # offline and not cached: the file may well exist, and it can change the pad id
        except EntryNotFoundError:
            log.debug("%s has no %s", repo, name)
    return folder


def _cache_lookup(repo: str, cache_dir: str | None) -> tuple[Path | None, list[str]]:
    """(snapshot folder holding tokenizer.json, files neither cached nor known to be absent from the repo)."""
    from huggingface_hub import try_to_load_from_cache

    found = {name: try_to_load_from_cache(repo, name, cache_dir=cache_dir) for name in TOKENIZER_FILES}
    unknown = [name for name, hit in found.items() if hit is None]  # str: cached; a sentinel: known absent
    folder = Path(found[REQUIRED]).parent if isinstance(found[REQUIRED], str) else None
    if folder is None and REQUIRED not in unknown:
        unknown.insert(0, REQUIRED)  # the repo has none: same answer, nothing to load
    return folder, unknown


def cached_tokenizer_dir(repo: str, cache_dir: str | None) -> Path | None:
    """The cached snapshot folder of ``repo``'s tokenizer, or None when ``fetch_tokenizer_files`` is still needed.

    None also when a config file was never asked for (another tool cached
    ``tokenizer.json`` alone): it may name the pad token, so guessing could
    silently change the ids.
    """
    folder, unknown = _cache_lookup(repo, cache_dir)
    return folder if folder is not None and not unknown else None


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _token(value) -> str | None:
    """A special token as the configs write it: a string or an AddedToken dict."""
    return value.get("content") if isinstance(value, dict) else value


class HubTokenizer:
    """open_clip's ``HFTokenizer`` (standard mode) on ``tokenizers`` alone.

    Args:
        source: a folder holding the tokenizer files, or a hub repository id
            looked up in the cache only (never downloaded here).
        context_length: every row is padded or cut to this many ids.
        clean: open_clip's text cleaning: ``whitespace``, ``lower`` or ``canonicalize``.
        strip_sep_token: replace the separator id with 0 (open_clip's CLIPA setting).
        cache_dir: the hub cache; None means the hub client's default.
        tokenizer_mode: open_clip's ``tokenizer_mode``; only the standard one (None) is supported.
    """

    def __init__(self, source: str | Path, context_length: int, clean: str = "whitespace",
                 strip_sep_token: bool = False, cache_dir: str | None = None,
                 tokenizer_mode: str | None = None) -> None:
        if tokenizer_mode:
            raise ValueError(f"tokenizer_mode {tokenizer_mode!r} is not supported here (only open_clip's standard "
                             "mode); use open_clip's HFTokenizer, which needs transformers.")
        if clean not in CLEANERS:
            raise ValueError(f"Unknown text cleaning {clean!r}: choose one of {', '.join(CLEANERS)}.")
        from tokenizers import Tokenizer

        self.folder = _resolve(source, cache_dir)
        self.context_length = int(context_length)
        self.clean = CLEANERS[clean]
        self.tokenizer = tok = Tokenizer.from_file(str(self.folder / REQUIRED))
        config = _read_json(self.folder / "tokenizer_config.json")
        special = _read_json(self.folder / "special_tokens_map.json")
        padding = tok.padding or {}

        # transformers reads special_tokens_map.json over tokenizer_config.json unless the latter lists its
        # added tokens (then it ignores the map and falls back on its class's default; the map is a better
        # guess than none); the pipeline's own padding settings come last.
        names = {**special, **config} if "added_tokens_decoder" in config else {**config, **special}
        pad_token = _token(names.get("pad_token")) or padding.get("pad_token")
        self.pad_id = self._id(pad_token) if pad_token else int(padding.get("pad_id", 0))
        pad_token = pad_token or tok.id_to_token(self.pad_id) or ""
        sep_token = _token(names.get("sep_token"))
        self.sep_id = self._id(sep_token) if sep_token else None
        self.strip_sep_token = strip_sep_token

        # The same call transformers makes: tokenizers leaves room for the post-processor's special
        # tokens (T5's closing </s>) when it cuts, so a cut row still ends in </s>.
        tok.enable_truncation(self.context_length, stride=0, strategy="longest_first",
                              direction=config.get("truncation_side", "right"))
        tok.enable_padding(direction=config.get("padding_side", padding.get("direction", "right")),
                           pad_id=self.pad_id, pad_type_id=0, pad_token=pad_token, length=self.context_length)
        tok.encode_special_tokens = bool(config.get("split_special_tokens", False))

    def _id(self, token: str) -> int:
        found = self.tokenizer.token_to_id(token)
        if found is None:
            raise ValueError(f"The tokenizer in {self.folder} names {token!r} as a special token but has no id for it.")
        return found

    def encode(self, texts: str | Sequence[str]) -> np.ndarray:
        """Token ids, int64, shape ``(len(texts), context_length)``."""
        if isinstance(texts, str):
            texts = [texts]
        encodings = self.tokenizer.encode_batch([self.clean(t) for t in texts])
        ids = np.array([e.ids for e in encodings], dtype=np.int64).reshape(len(encodings), self.context_length)
        if self.strip_sep_token and self.sep_id is not None:
            ids[ids == self.sep_id] = 0
        return ids

    def __call__(self, texts: str | Sequence[str]):
        """``encode`` as a ``torch.LongTensor``, what open_clip models take."""
        import torch

        return torch.from_numpy(self.encode(texts))


def _resolve(source: str | Path, cache_dir: str | None) -> Path:
    path = Path(source)
    if path.is_dir():
        if not (path / REQUIRED).is_file():
            raise TokenizerNotAvailable(f"The tokenizer folder {path} has no {REQUIRED}.")
        return path
    if isinstance(source, Path) or not _REPO_ID.fullmatch(source):
        raise TokenizerNotAvailable(f"Tokenizer folder not found: {path}")
    folder, unknown = _cache_lookup(source, cache_dir)
    if folder is None or unknown:
        where = cache_dir or "the default hub cache"
        raise TokenizerNotAvailable(
            f"The tokenizer of {source} is not in the model cache ({where}): {', '.join(unknown)} missing. "
            "It has to be downloaded from the model hub once.")
    return folder
