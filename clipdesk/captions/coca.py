"""Generative captions from open_clip's CoCa models.

The models load through the same rules as the search model (presets, local
checkpoint files as safetensors or weights-only PyTorch, the shared models
folder). Generation is a small beam search or nucleus sampler written here
over ``CoCa.forward``: open_clip's own ``generate`` keeps one beam per image
and needs ``transformers``, while reranking wants several candidates.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np

from clipdesk.captions.base import DEFAULT_MAX_LEN, PhotoItem, clean_caption
from clipdesk.engine.registry import ModelSpec, resolve
from clipdesk.errors import ModelNotAvailable, ModelSpecError, QueryError

log = logging.getLogger(__name__)

SOT, EOT = 49406, 49407  # open_clip's tokenizer
MIN_LEN = 3

CAPTION_PRESETS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        # Both hub repositories hold only open_clip_pytorch_model.bin (their file lists, 2026): no safetensors to ask for.
        ModelSpec("coca-vit-b-32", "coca_ViT-B-32", "mscoco_finetuned_laion2b_s13b_b90k",
                  hub_files=("open_clip_pytorch_model.bin",),
                  description="Default. CoCa ViT-B/32 fine-tuned on COCO captions (~1 GB)."),
        ModelSpec("coca-vit-l-14", "coca_ViT-L-14", "mscoco_finetuned_laion2b_s13b_b90k",
                  hub_files=("open_clip_pytorch_model.bin",),
                  description="CoCa ViT-L/14 fine-tuned on COCO: better, ~3x slower; use a GPU."),
        ModelSpec("tiny-coca", "clipdesk-tiny-coca", random_init=True,
                  description="TEST ONLY: tiny random CoCa; its captions are random words."),
    )
}
DEFAULT_CAPTION_MODEL = "coca-vit-b-32"


def resolve_caption_model(text: str | None) -> ModelSpec:
    """A preset name, ``ARCH/TAG`` or ``ARCH:CHECKPOINT`` whose architecture is a CoCa."""
    name = (text or DEFAULT_CAPTION_MODEL).strip()
    preset = CAPTION_PRESETS.get(name.lower())
    spec = preset if preset is not None else resolve(name)
    if "coca" not in spec.arch.lower():
        raise ModelSpecError(f"'{name}' is not a CoCa model; caption presets: {', '.join(CAPTION_PRESETS)}.")
    return spec


class CocaCaptioner:
    """One CoCa model; loads on first use (on whatever thread calls first)."""

    def __init__(self, spec: ModelSpec, device: str = "auto", batch_size: int = 8,
                 method: str = "beam", max_len: int = DEFAULT_MAX_LEN, top_p: float = 0.9,
                 precision: str = "auto") -> None:
        from clipdesk.engine.clip import ClipEngine

        if method not in ("beam", "nucleus"):
            raise ValueError(f"unknown generation method {method!r}")
        limit = decoder_context(spec.arch)
        if not 1 <= max_len <= limit:
            # Each generated token takes a position of the text decoder; past its context the
            # positional embedding has no row for it (a shape error deep inside the model).
            raise QueryError(f"--max-len must be between 1 and {limit} for {spec.name} (its text decoder has "
                             f"{limit} positions), not {max_len}.")
        self.spec = spec
        self.method, self.max_len, self.top_p = method, max_len, top_p
        self.batch_size = batch_size
        self._engine = ClipEngine(spec, device=device, batch_size=batch_size, precision=precision)
        self._prep = None

    @property
    def model_key(self) -> str:
        return self._engine.key  # the precision is part of what made the caption

    def load(self):
        try:
            model = self._engine.model
        except ModelNotAvailable as exc:
            # The engine's advice names --model, the search model's flag.
            raise ModelNotAvailable(str(exc).replace("--model", "--caption-model")) from exc
        if self._prep is None:
            import open_clip
            import torch

            cfg = open_clip.get_model_preprocess_cfg(model)
            dev = self._engine.device
            self._prep = (torch.tensor(cfg.get("mean", open_clip.OPENAI_DATASET_MEAN), device=dev).view(1, 3, 1, 1),
                          torch.tensor(cfg.get("std", open_clip.OPENAI_DATASET_STD), device=dev).view(1, 3, 1, 1))
        return model

    def candidates(self, items: Sequence[PhotoItem], n: int) -> list[list[str]]:
        from clipdesk.imageio import ImageReadError, read_photo

        self.load()
        spec = self._engine.input_spec()
        out: list[list[str]] = [[] for _ in items]
        pixels, rows = [], []
        for i, item in enumerate(items):
            try:
                pixels.append(read_photo(item.path, spec.size, spec.squash).pixels)
                rows.append(i)
            except (ImageReadError, OSError) as exc:
                log.warning("cannot caption %s: %s", item.path, exc)
        for start in range(0, len(rows), self.batch_size):
            chunk = np.stack(pixels[start:start + self.batch_size])
            for i, texts in zip(rows[start:start + self.batch_size], self.caption_pixels(chunk, n), strict=True):
                out[i] = texts
        return out

    def caption_pixels(self, pixels: np.ndarray, n: int) -> list[list[str]]:
        """Candidates for uint8 ``N x S x S x 3`` arrays, best first."""
        import torch

        model = self.load()
        mean, std = self._prep
        dev = self._engine.device
        # The requested precision: CoCa's first parameter (logit_scale) stays fp32 under open_clip's
        # low-precision conversion while the towers are fp16 ("mat1 and mat2 must have the same dtype").
        dtype = self._engine.dtype
        with torch.inference_mode():
            x = torch.from_numpy(np.ascontiguousarray(pixels)).to(dev).permute(0, 3, 1, 2).float().div_(255.0)
            _, embs = model._encode_image(((x - mean) / std).to(dtype))  # noqa: SLF001 - CoCa's token path
            if self.method == "beam":
                seqs = _beam_search(model, embs, n, self.max_len)
            else:
                seqs = _sample(model, embs, n, self.max_len, self.top_p)
        return [_dedupe([self._decode(s) for s in group]) for group in seqs]

    @staticmethod
    def _decode(tokens: list[int]) -> str:
        from open_clip.tokenizer import _tokenizer as tokenizer  # the CLIP BPE every CoCa tag uses

        body = [t for t in tokens if t not in (SOT, EOT, 0)]
        return clean_caption(tokenizer.decode(body))


def decoder_context(arch: str) -> int:
    """How many tokens CoCa's text decoder can take: the longest caption it can generate."""
    from clipdesk.engine.registry import register_tiny

    try:
        import open_clip
    except ImportError:
        return 76
    register_tiny()
    cfg = open_clip.get_model_config(arch) or {}
    return int((cfg.get("multimodal_cfg") or cfg.get("text_cfg") or {}).get("context_length", 76))


def _dedupe(texts: list[str]) -> list[str]:
    return [t for t in dict.fromkeys(texts) if t]


def _next_logprobs(model, embs, tokens):
    import torch

    # Given image features, forward() skips the image tower; ``image_latent``
    # only passes through to the output, so any non-None tensor will do.
    logits = model(None, tokens, image_latent=embs[:, 0], image_embs=embs, output_labels=False)["logits"][:, -1].float()
    # Start and pad tokens are never part of a caption; a weak model that picks
    # them would otherwise yield captions that decode to nothing.
    logits[:, [SOT, 0]] = float("-inf")
    return torch.log_softmax(logits, dim=-1)


def _beam_search(model, embs, n: int, max_len: int) -> list[list[list[int]]]:
    """Length-normalised beam search keeping the ``n`` best finished beams per image."""
    import torch

    batch, beams = embs.shape[0], max(n, 2)
    embs = embs.repeat_interleave(beams, dim=0)
    tokens = torch.full((batch * beams, 1), SOT, dtype=torch.long, device=embs.device)
    scores = torch.full((batch, beams), float("-inf"), device=embs.device)
    scores[:, 0] = 0.0  # all beams start identical: keep one alive
    done: list[list[tuple[float, list[int]]]] = [[] for _ in range(batch)]
    for step in range(1, max_len + 1):
        logp = _next_logprobs(model, embs, tokens).view(batch, beams, -1)
        if step <= MIN_LEN:
            logp[..., EOT] = float("-inf")
        total = (scores.unsqueeze(-1) + logp).view(batch, -1)
        top, idx = total.topk(2 * beams, dim=1)
        vocab = logp.shape[-1]
        next_rows, next_tok, next_scores = [], [], []
        for b in range(batch):
            kept = 0
            for score, flat in zip(top[b].tolist(), idx[b].tolist(), strict=True):
                beam, tok = divmod(flat, vocab)
                row = b * beams + beam
                if tok == EOT or step == max_len:
                    if score > float("-inf"):
                        done[b].append((score / step, tokens[row, 1:].tolist() + [tok]))
                    continue
                if kept < beams:
                    next_rows.append(row)
                    next_tok.append(tok)
                    next_scores.append(score)
                    kept += 1
            while kept < beams:  # fewer live candidates than beams: pad with dead ones
                next_rows.append(b * beams)
                next_tok.append(EOT)
                next_scores.append(float("-inf"))
                kept += 1
        if all(len(d) >= n for d in done) or step == max_len:
            break
        rows = torch.tensor(next_rows, device=embs.device)
        tokens = torch.cat([tokens[rows], torch.tensor(next_tok, device=embs.device).unsqueeze(1)], dim=1)
        scores = torch.tensor(next_scores, device=embs.device).view(batch, beams)
    return [[seq for _, seq in sorted(d, key=lambda e: -e[0])[:n]] for d in done]


def _sample(model, embs, n: int, max_len: int, top_p: float) -> list[list[list[int]]]:
    """Nucleus (top-p) sampling: ``n`` independent samples per image."""
    import torch

    batch = embs.shape[0]
    embs = embs.repeat_interleave(n, dim=0)
    tokens = torch.full((batch * n, 1), SOT, dtype=torch.long, device=embs.device)
    finished = torch.zeros(batch * n, dtype=torch.bool, device=embs.device)
    for step in range(1, max_len + 1):
        logp = _next_logprobs(model, embs, tokens)
        if step <= MIN_LEN:
            logp[:, EOT] = float("-inf")
        probs, order = logp.exp().sort(dim=-1, descending=True)
        outside = probs.cumsum(-1) - probs > top_p  # keep the smallest set whose mass reaches top_p
        probs[outside] = 0.0
        pick = order.gather(1, torch.multinomial(probs, 1))
        pick[finished] = EOT
        tokens = torch.cat([tokens, pick], dim=1)
        finished |= pick.squeeze(1) == EOT
        if finished.all():
            break
    seqs = tokens[:, 1:].tolist()
    return [[_until_eot(s) for s in seqs[b * n:(b + 1) * n]] for b in range(batch)]


def _until_eot(seq: list[int]) -> list[int]:
    return seq[: seq.index(EOT)] if EOT in seq else seq
