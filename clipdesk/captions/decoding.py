"""Greedy, beam and nucleus decoding for the caption decoder, batched over embeddings.

Each function takes the decoder's prefix states (``model.prefix_states``) for a
batch of rows and returns, per row, a list of ``(score, token ids)`` best-first;
the score is the length-normalised log-probability. The sequences are short (at
most ``max_words`` + 1 steps), so every step re-runs the whole prefix instead of
keeping a key/value cache: simpler, and cheap at this size.
"""

from __future__ import annotations

import torch

from clipdesk.captions.textdata import BOS, EOS, PAD, UNK

LENGTH_ALPHA = 0.7  # GNMT-style length normalisation: plain sums favour short captions


def _norm(score: float, length: int) -> float:
    return score / max(length, 1) ** LENGTH_ALPHA


def _step(model, prefix, seqs, t: int, max_words: int):
    logp = model.next_logprobs(prefix, seqs)
    logp[:, [PAD, BOS, UNK]] = float("-inf")  # never emit padding, a second start or an unknown word
    if t == 0:
        logp[:, EOS] = float("-inf")  # no empty caption
    if t >= max_words:  # out of room: end here
        eos = logp[:, EOS].clone()
        logp.fill_(float("-inf"))
        logp[:, EOS] = eos
    return logp


@torch.inference_mode()
def greedy(model, prefix, max_words: int) -> list[list[tuple[float, list[int]]]]:
    rows = len(prefix)
    seqs = torch.full((rows, 1), BOS, dtype=torch.long, device=prefix.device)
    total = torch.zeros(rows, device=prefix.device)
    done = torch.zeros(rows, dtype=torch.bool, device=prefix.device)
    for t in range(max_words + 1):
        logp = _step(model, prefix, seqs, t, max_words)
        score, tok = logp.max(dim=-1)
        tok = torch.where(done, torch.full_like(tok, EOS), tok)
        total += torch.where(done, torch.zeros_like(score), score)
        seqs = torch.cat([seqs, tok[:, None]], dim=1)
        done |= tok == EOS
        if bool(done.all()):
            break
    out = []
    for r in range(rows):
        ids = _until_eos(seqs[r, 1:].tolist())
        out.append([(_norm(float(total[r]), len(ids) + 1), ids)])
    return out


@torch.inference_mode()
def beam(model, prefix, max_words: int, width: int) -> list[list[tuple[float, list[int]]]]:
    """Beam search keeping ``width`` live hypotheses per row; returns up to ``width`` finished ones."""
    rows, dev = len(prefix), prefix.device
    prefix = prefix.repeat_interleave(width, dim=0)
    seqs = torch.full((rows * width, 1), BOS, dtype=torch.long, device=dev)
    scores = torch.full((rows, width), float("-inf"), device=dev)
    scores[:, 0] = 0.0  # all beams start identical: expand only the first
    finished: list[list[tuple[float, list[int]]]] = [[] for _ in range(rows)]
    for t in range(max_words + 1):
        logp = _step(model, prefix, seqs, t, max_words)
        vocab = logp.shape[1]
        cand = (scores.view(-1, 1) + logp).view(rows, width * vocab)
        top_scores, top_idx = cand.topk(2 * width, dim=1)
        top_scores, top_idx = top_scores.tolist(), top_idx.tolist()
        next_rows, next_tokens, next_scores = [], [], []
        for r in range(rows):
            kept = 0
            for s, idx in zip(top_scores[r], top_idx[r], strict=True):
                src, tok = divmod(idx, vocab)
                if s == float("-inf"):
                    break
                if tok == EOS:
                    if len(finished[r]) < width:
                        ids = seqs[r * width + src, 1:].tolist()
                        finished[r].append((_norm(s, len(ids) + 1), ids))
                    continue
                if kept < width:
                    next_rows.append(r * width + src)
                    next_tokens.append(tok)
                    next_scores.append(s)
                    kept += 1
            while kept < width:  # a dead slot: -inf keeps it out of every later top-k
                next_rows.append(r * width)
                next_tokens.append(EOS)
                next_scores.append(float("-inf"))
                kept += 1
        if all(len(f) >= width for f in finished):
            break
        index = torch.tensor(next_rows, device=dev)
        seqs = torch.cat([seqs[index], torch.tensor(next_tokens, device=dev)[:, None]], dim=1)
        scores = torch.tensor(next_scores, device=dev).view(rows, width)
    return [sorted(f, key=lambda x: -x[0]) for f in finished]


@torch.inference_mode()
def nucleus(model, prefix, max_words: int, samples: int, top_p: float = 0.9, temperature: float = 1.0,
            generator: torch.Generator | None = None) -> list[list[tuple[float, list[int]]]]:
    """``samples`` draws per row from the top-p nucleus, ranked by their model log-probability."""
    rows, dev = len(prefix), prefix.device
    prefix = prefix.repeat_interleave(samples, dim=0)
    n = len(prefix)
    seqs = torch.full((n, 1), BOS, dtype=torch.long, device=dev)
    total = torch.zeros(n, device=dev)
    done = torch.zeros(n, dtype=torch.bool, device=dev)
    for t in range(max_words + 1):
        logp = _step(model, prefix, seqs, t, max_words)
        probs = torch.softmax(logp / temperature, dim=-1)
        sorted_p, order = probs.sort(dim=-1, descending=True)
        outside = sorted_p.cumsum(-1) - sorted_p > top_p  # always keeps the most likely token
        sorted_p[outside] = 0.0
        if generator is not None:  # a seeded CPU generator makes sampling repeatable
            pick = torch.multinomial(sorted_p.float().cpu(), 1, generator=generator).to(dev)
        else:
            pick = torch.multinomial(sorted_p, 1)
        tok = order.gather(1, pick).squeeze(1)
        tok = torch.where(done, torch.full_like(tok, EOS), tok)
        step_score = logp.gather(1, tok[:, None]).squeeze(1)
        total += torch.where(done, torch.zeros_like(step_score), step_score)
        seqs = torch.cat([seqs, tok[:, None]], dim=1)
        done |= tok == EOS
        if bool(done.all()):
            break
    out = []
    for r in range(rows):
        cands = []
        for i in range(r * samples, (r + 1) * samples):
            ids = _until_eos(seqs[i, 1:].tolist())
            cands.append((_norm(float(total[i]), len(ids) + 1), ids))
        out.append(sorted(cands, key=lambda x: -x[0]))
    return out


def _until_eos(ids: list[int]) -> list[int]:
    return ids[: ids.index(EOS)] if EOS in ids else ids
