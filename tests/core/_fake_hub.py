"""A SigLIP-like hub tokenizer built offline, in the hub client's cache layout (shared by several tests).

A T5-style Unigram model trained on the COCO captions, with the pipeline
transformers' T5 converter writes (minus SentencePiece's precompiled
character map, which only SentencePiece makes) and the configs a SigLIP
repository holds (pad token "</s>", like timm/ViT-B-16-SigLIP).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from clipdesk.engine.hf_tokenizer import TOKENIZER_FILES

REPO = "timm/ViT-B-16-SigLIP"
REV = "5d2b6b3b0e4f4c6a9d1e8f7a6b5c4d3e2f1a0b9c"
PAD, EOS, UNK = 0, 1, 2  # T5's fixed ids; SigLIP pads with EOS


def coco_captions(shared_data: Path) -> list[str]:
    entries = json.loads((shared_data / "coco_mini" / "captions.json").read_text())
    return [c for e in entries for c in e["captions"]]


def _added(content: str) -> dict:
    return {"content": content, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}


def build_siglip_like(folder: Path, captions: list[str], vocab_size: int = 500) -> Path:
    from tokenizers import Regex, Tokenizer, decoders, normalizers, pre_tokenizers, processors, trainers
    from tokenizers.models import Unigram

    tok = Tokenizer(Unigram())
    tok.normalizer = normalizers.Sequence([normalizers.Strip(left=False, right=True),
                                           normalizers.Replace(Regex(" {2,}"), "▁")])
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=True)
    tok.train_from_iterator(captions, trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"], unk_token="<unk>", show_progress=False))
    tok.post_processor = processors.TemplateProcessing(
        single=["$A", "</s>"], pair=["$A", "</s>", "$B", "</s>"], special_tokens=[("</s>", EOS)])
    assert [tok.id_to_token(i) for i in (PAD, EOS, UNK)] == ["<pad>", "</s>", "<unk>"]

    folder.mkdir(parents=True, exist_ok=True)
    tok.save(str(folder / "tokenizer.json"))
    config = {  # what transformers' save_pretrained writes for open_clip's SigLIP T5TokenizerFast
        "added_tokens_decoder": {str(i): {**_added(t), "special": True} for i, t in enumerate(["<pad>", "</s>", "<unk>"])},
        "additional_special_tokens": [], "clean_up_tokenization_spaces": False, "eos_token": "</s>", "extra_ids": 0,
        "extra_special_tokens": {}, "legacy": False, "model_max_length": 1000000000000000019884624838656,
        "pad_token": "</s>", "sp_model_kwargs": {}, "tokenizer_class": "T5Tokenizer", "unk_token": "<unk>",
    }
    (folder / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    special = {"eos_token": "</s>", "pad_token": "</s>", "unk_token": _added("<unk>")}
    (folder / "special_tokens_map.json").write_text(json.dumps(special, indent=2))
    return folder


def hub_cache(root: Path, folder: Path, files=TOKENIZER_FILES, absent=(), repo: str = REPO) -> Path:
    """``folder``'s files as huggingface_hub caches ``repo`` at ``REV`` (``absent``: known missing on the hub)."""
    repo_dir = root / ("models--" + repo.replace("/", "--"))
    (repo_dir / "snapshots" / REV).mkdir(parents=True)
    (repo_dir / "refs").mkdir()
    (repo_dir / "refs" / "main").write_text(REV)  # no newline: the hub client reads it verbatim
    for name in files:
        shutil.copy(folder / name, repo_dir / "snapshots" / REV / name)
    for name in absent:
        marker = repo_dir / ".no_exist" / REV / name
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.touch()
    return root
