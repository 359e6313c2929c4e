"""HubTokenizer: open_clip's HFTokenizer for SigLIP-style hub tokenizers, on ``tokenizers`` alone and offline.

The tokenizer here is built in the test: a T5-style Unigram model trained on
the COCO captions, with the pipeline transformers' T5 converter writes (minus
SentencePiece's precompiled character map, which only SentencePiece makes)
and the configs a SigLIP repository holds (pad token "</s>", like
timm/ViT-B-16-SigLIP), put in a hub-cache layout.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from _fake_hub import EOS, PAD, REPO, REV, build_siglip_like, coco_captions, hub_cache

from clipdesk.engine.hf_tokenizer import (
    CLEANERS,
    TOKENIZER_FILES,
    HubTokenizer,
    TokenizerNotAvailable,
    cached_tokenizer_dir,
    fetch_tokenizer_files,
)
from clipdesk.errors import ModelNotAvailable

TEXTS = [
    "a photo of a dog", "A Photo Of A DOG!!!", "", "   ", "two_cats on a sofa", "tab\tand\nnewline  end ",
    "&amp;lt;b&amp;gt;bold&amp;lt;/b&amp;gt;", "<i>fish &amp;amp; chips</i>", "</s> <pad> <unk> tags", "Café crème, naïve façade", "ﬁsh ＡＢＣ ½",
    "mojibake: cafÃ©", "日本語のテキスト", "emoji 😀 🐶", "x" * 500, "a man riding a wave " * 100,
]


def _added(content: str) -> dict:
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}


@pytest.fixture(scope="module")
def captions(shared_data) -> list[str]:
    return coco_captions(shared_data)


@pytest.fixture(scope="module")
def siglip_like(tmp_path_factory, captions) -> Path:
    return build_siglip_like(tmp_path_factory.mktemp("siglip-like"), captions)


def _hub_cache(root: Path, folder: Path, files=TOKENIZER_FILES, absent=()) -> Path:
    return hub_cache(root, folder, files, absent)


@pytest.fixture
def hub(tmp_path, siglip_like) -> Path:
    return _hub_cache(tmp_path / "hub", siglip_like)


def _raw_ids(folder: Path, text: str) -> list[int]:
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(folder / "tokenizer.json")).encode(text).ids


def test_loads_offline_from_the_hub_cache(hub):
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    snapshot = hub / "models--timm--ViT-B-16-SigLIP" / "snapshots" / REV
    assert cached_tokenizer_dir(REPO, str(hub)) == snapshot
    tok = HubTokenizer(REPO, 64, clean="canonicalize", cache_dir=str(hub))
    assert tok.folder == snapshot and tok.pad_id == EOS
    assert HubTokenizer(snapshot, 64).pad_id == EOS  # the folder itself works too


def test_short_texts_end_in_eos_then_pad(siglip_like):
    ids = HubTokenizer(siglip_like, 64).encode(["a dog on a beach", ""])
    assert ids.shape == (2, 64) and ids.dtype == np.int64
    raw = _raw_ids(siglip_like, "a dog on a beach")
    assert raw[-1] == EOS and len(raw) < 64
    assert ids[0, : len(raw)].tolist() == raw and (ids[0, len(raw):] == EOS).all()
    assert (ids[1] == EOS).all()  # an empty text is just </s>, padded with </s>
    assert HubTokenizer(siglip_like, 64).encode("a dog on a beach").tolist() == ids[:1].tolist()


def test_pad_id_comes_from_the_configs(siglip_like, tmp_path):
    folder = shutil.copytree(siglip_like, tmp_path / "pad")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    config["pad_token"] = {**_added("<pad>"), "special": True}  # the AddedToken form
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert HubTokenizer(folder, 64).pad_id == PAD  # tokenizer_config lists its added tokens: it wins
    del config["added_tokens_decoder"]
    (folder / "tokenizer_config.json").write_text(json.dumps(config))
    assert HubTokenizer(folder, 64).pad_id == EOS  # else special_tokens_map.json does, as in transformers
    (folder / "special_tokens_map.json").unlink()
    (folder / "tokenizer_config.json").unlink()
    tok = HubTokenizer(folder, 64)
    assert tok.pad_id == PAD and tok.encode("a dog")[0, -1] == PAD  # no configs, no padding in the pipeline: 0


def test_long_text_is_cut_and_still_ends_in_eos(siglip_like):
    text = " ".join(["surfer"] * 200 + ["riding"] * 200)
    assert len(text.split()) == 400
    raw = _raw_ids(siglip_like, text)
    assert len(raw) > 400
    row = HubTokenizer(siglip_like, 64).encode([text])[0]
    assert row[-1] == EOS and row[:63].tolist() == raw[:63]  # room kept for </s>, not cut after it


def test_canonicalize_drops_punctuation_and_case(siglip_like):
    canon = HubTokenizer(siglip_like, 32, clean="canonicalize")
    plain = HubTokenizer(siglip_like, 32, clean="whitespace")
    assert canon.encode("A Dog, RUNNING_on the beach!!!").tolist() == canon.encode("a dog running on the beach").tolist()
    assert plain.encode("A Dog, RUNNING on the beach!!!").tolist() != plain.encode("a dog running on the beach").tolist()
    assert CLEANERS["canonicalize"]("  Hello,\tWorld_again! &amp; ") == "hello world again"
    assert CLEANERS["lower"]("  Two  CATS &amp;amp; a dog ") == "two cats & a dog"
    assert CLEANERS["lower"]("<i>Fish &amp;amp; chips</i>") == "<i>fish & chips</i>"  # ftfy leaves markup alone
    assert CLEANERS["whitespace"]("  Two \n CATS, cafÃ©  ") == "Two CATS, café"


@pytest.mark.parametrize("clean", sorted(CLEANERS))
def test_cleaning_matches_open_clip(clean, captions):
    tokenizer = pytest.importorskip("open_clip.tokenizer")
    texts = [*TEXTS, *captions[:50], "under_score\u00a0nbsp\u3000ideographic", "'quotes' “curly” — dash …"]
    assert [CLEANERS[clean](t) for t in texts] == [tokenizer.get_clean_fn(clean)(t) for t in texts]


def test_missing_files_are_named(siglip_like, tmp_path):
    bare = _hub_cache(tmp_path / "bare", siglip_like, files=TOKENIZER_FILES[1:])
    assert cached_tokenizer_dir(REPO, str(bare)) is None
    with pytest.raises(FileNotFoundError, match=rf"{REPO}.*tokenizer\.json") as err:
        HubTokenizer(REPO, 64, cache_dir=str(bare))
    assert isinstance(err.value, ModelNotAvailable)  # a user-facing message, shown like other model errors
    with pytest.raises(FileNotFoundError, match=r"tokenizer\.json"):
        HubTokenizer(REPO, 64, cache_dir=str(tmp_path / "empty"))
    empty = tmp_path / "folder"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match=r"has no tokenizer\.json"):
        HubTokenizer(empty, 64)
    with pytest.raises(FileNotFoundError, match="not found"):
        HubTokenizer(tmp_path / "nowhere", 64)


def test_a_config_never_fetched_is_not_guessed(siglip_like, tmp_path):
    # Only tokenizer.json cached: the pad id would be a guess, so the cache does not count as complete.
    partial = _hub_cache(tmp_path / "partial", siglip_like, files=TOKENIZER_FILES[:1])
    assert cached_tokenizer_dir(REPO, str(partial)) is None
    with pytest.raises(FileNotFoundError, match="tokenizer_config.json, special_tokens_map.json"):
        HubTokenizer(REPO, 64, cache_dir=str(partial))
    # The hub said the repo has no such files: nothing to guess.
    known = _hub_cache(tmp_path / "known", siglip_like, files=TOKENIZER_FILES[:1], absent=TOKENIZER_FILES[1:])
    assert cached_tokenizer_dir(REPO, str(known)) is not None
    assert HubTokenizer(REPO, 64, cache_dir=str(known)).pad_id == PAD


def test_fetch_with_an_injected_download(siglip_like, tmp_path):
    from huggingface_hub.errors import EntryNotFoundError, LocalEntryNotFoundError

    calls, snapshot = [], tmp_path / "snap"
    snapshot.mkdir()

    def download(repo, name, cache_dir):
        calls.append((repo, name, cache_dir))
        if name == "special_tokens_map.json":
            raise EntryNotFoundError(f"{repo} has no {name}")
        return str(shutil.copy(siglip_like / name, snapshot / name))

    assert fetch_tokenizer_files(REPO, "cache", download=download) == snapshot
    assert calls == [(REPO, name, "cache") for name in TOKENIZER_FILES]
    assert HubTokenizer(snapshot, 64).pad_id == EOS

    def offline(repo, name, cache_dir):
        if name == "tokenizer.json":
            return str(snapshot / name)
        raise LocalEntryNotFoundError("offline and not cached")

    with pytest.raises(LocalEntryNotFoundError):  # not the same as "the repo has none"
        fetch_tokenizer_files(REPO, "cache", download=offline)

    def nothing(repo, name, cache_dir):
        raise EntryNotFoundError("404")

    with pytest.raises(TokenizerNotAvailable, match=r"tokenizer\.json"):
        fetch_tokenizer_files(REPO, "cache", download=nothing)


def test_options(siglip_like, tmp_path):
    with pytest.raises(ValueError, match="clips"):
        HubTokenizer(siglip_like, 64, tokenizer_mode="clips")
    with pytest.raises(ValueError, match="canonicalize"):
        HubTokenizer(siglip_like, 64, clean="nfkc")
    assert (HubTokenizer(siglip_like, 16, strip_sep_token=True).encode("a dog") == EOS).any()  # T5 names no sep
    folder = shutil.copytree(siglip_like, tmp_path / "sep")
    config = json.loads((folder / "tokenizer_config.json").read_text())
    (folder / "tokenizer_config.json").write_text(json.dumps({**config, "sep_token": "</s>"}))
    ids = HubTokenizer(folder, 16, strip_sep_token=True).encode("a dog")
    assert not (ids == EOS).any() and ids[0, -1] == 0  # open_clip's CLIPA setting: separator ids become 0
    torch = pytest.importorskip("torch")
    out = HubTokenizer(siglip_like, 16)(["a dog", "a cat"])
    assert out.dtype == torch.long and tuple(out.shape) == (2, 16)


def test_agrees_with_open_clip_hf_tokenizer(siglip_like, captions, tmp_path):
    """Same ids as open_clip's HFTokenizer (transformers' AutoTokenizer); runs where transformers is installed."""
    pytest.importorskip("transformers")
    from open_clip.tokenizer import HFTokenizer

    texts = [*TEXTS, *captions[::25]]
    ref = HFTokenizer(str(siglip_like), context_length=64, clean="canonicalize")(texts).numpy()
    assert np.array_equal(HubTokenizer(siglip_like, 64, clean="canonicalize").encode(texts), ref)
    # transformers 5 rebuilds T5's pre-tokenizer rather than reading tokenizer.json's, which changes the
    # ids around special-token strings ("dog</s>cat"); canonicalize strips those, whitespace keeps them.
    plain = [t for t in texts if "<" not in t]
    ref_plain = HFTokenizer(str(siglip_like), context_length=64)(plain).numpy()
    assert np.array_equal(HubTokenizer(siglip_like, 64).encode(plain), ref_plain)

    # Negative control: pad with <pad> instead of </s> and the rows differ exactly where open_clip pads.
    other = shutil.copytree(siglip_like, tmp_path / "pad0")
    for name in TOKENIZER_FILES[1:]:
        data = json.loads((other / name).read_text())
        data["pad_token"] = "<pad>"
        (other / name).write_text(json.dumps(data))
    mine = HubTokenizer(other, 64, clean="canonicalize").encode(texts)
    differs = mine != ref
    assert differs.any()
    assert (ref[differs] == EOS).all() and (mine[differs] == PAD).all()
