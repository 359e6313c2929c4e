"""Training the two heads on embeddings (torch, CPU is enough): ArcFace for images, InfoNCE for text.

Stage 1 (image side, 2SFT's first stage): every pseudo-class (one photo and
its augmented views, or one cluster of near-duplicates) gets a learned
proxy; ArcFace (Deng et al.) adds an angular margin ``m`` to each vector's
angle to its own proxy and scales the cosines by ``s``, which pulls a
photo's views together and pushes other photos away on the sphere.

Stage 2 (text side, MCIP): the text head is trained so that each
pseudo-caption's tuned text vector finds its photo's *tuned* image vector
among the batch (InfoNCE; pairs sharing the photo or the text are not
negatives), plus a term keeping each tuned text vector close to its base
vector, so words the library never showed do not drift.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from clipdesk.jobs import CancelToken
from clipdesk.tuning.heads import Head

EpochCallback = Callable[[int, int], None]  # (epochs done, epochs in all)
EPOCH_TOLERANCE = 0.01  # validation mAP a later epoch may lose and still be preferred
CANDIDATE_MARGIN = 0.005  # what a later candidate must win by to replace an earlier one


@dataclass(frozen=True)
class ImageSettings:
    epochs: int = 30
    batch: int = 256
    lr: float = 5e-3
    weight_decay: float = 1e-4
    scale: float = 20.0  # ArcFace s
    margin: float = 0.4  # ArcFace m, radians
    hidden: int | None = None  # hidden units; None: the embedding dimension
    keep: float = 1.0  # weight of the anchors' similarity structure (see train_image_head)


@dataclass(frozen=True)
class TextSettings:
    epochs: int = 30
    batch: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    temperature: float = 0.05
    keep: float = 1.0  # weight of 1 - cos(tuned text, base text)
    validation: float = 0.15  # share of the photos whose texts choose the epoch
    hidden: int | None = None


@contextmanager
def _one_thread():
    """Train on one thread: these matrices are small, and two torch threads on two cores that anything else
    also uses spin-wait for each other (measured: 2.5 s alone on one thread vs 50 s on two beside a test run)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _module(dim: int, hidden: int, seed: int):
    import torch

    class ResidualHead(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            start = Head.identity(dim, hidden, seed)
            self.w1 = torch.nn.Parameter(torch.from_numpy(start.w1.copy()))
            self.b1 = torch.nn.Parameter(torch.zeros(hidden))
            self.w2 = torch.nn.Parameter(torch.zeros(dim, hidden))  # zero: the identity at the start

        def forward(self, x):
            y = x + torch.nn.functional.gelu(x @ self.w1.T + self.b1, approximate="tanh") @ self.w2.T
            return torch.nn.functional.normalize(y, dim=-1)

        def export(self) -> Head:
            return Head(*(p.detach().cpu().numpy().astype(np.float32).copy() for p in (self.w1, self.b1, self.w2)))

    return ResidualHead()


@_one_thread()
def train_image_head(x: np.ndarray, classes: np.ndarray, settings: ImageSettings = ImageSettings(), seed: int = 0,
                     on_epoch: EpochCallback | None = None, cancel: CancelToken | None = None,
                     anchors: np.ndarray | None = None, validate: Callable[[Head], float] | None = None) -> Head | None:
    """ArcFace over ``classes`` (one int per row of ``x``); None if cancelled.

    ``anchors``: stored vectors of library photos; each step also keeps the
    similarities among a batch of them close to their base values, so the
    photos themselves keep their neighbours (what text search relies on)
    while their views are pulled onto them. ``validate``: scores a head on
    photos kept out of ``x`` (higher is better); the last epoch within
    ``EPOCH_TOLERANCE`` of the best score seen is returned, the untrained
    identity included, so training that only memorised its photos is not kept.
    """
    import torch
    from torch.nn import functional as fn

    torch.manual_seed(seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, np.float32))
    yt = torch.from_numpy(np.asarray(classes, np.int64))
    n_classes = int(yt.max()) + 1
    at = None if anchors is None or not len(anchors) else torch.from_numpy(np.ascontiguousarray(anchors, np.float32))
    head = _module(xt.shape[1], settings.hidden or xt.shape[1], seed)
    means = torch.zeros(n_classes, xt.shape[1]).index_add_(0, yt, xt)
    proxies = torch.nn.Parameter(fn.normalize(means, dim=-1))  # each class starts at its members' mean
    opt = torch.optim.AdamW([{"params": head.parameters(), "weight_decay": settings.weight_decay},
                             {"params": [proxies], "weight_decay": 0.0}], lr=settings.lr)
    cos_m, sin_m = float(np.cos(settings.margin)), float(np.sin(settings.margin))
    gen = torch.Generator().manual_seed(seed)
    best = head.export()
    top = validate(best) if validate else 0.0
    for epoch in range(settings.epochs):
        for rows in torch.randperm(len(xt), generator=gen).split(settings.batch):
            cos = (head(xt[rows]) @ fn.normalize(proxies, dim=-1).T).clamp(-1 + 1e-6, 1 - 1e-6)
            target = cos.gather(1, yt[rows, None])
            # cos(theta + m) for the own class only; past pi - m the margin would bend back, so it stops there.
            shifted = target * cos_m - torch.sqrt(1 - target * target) * sin_m
            shifted = torch.where(target > -cos_m, shifted, target - sin_m * settings.margin)
            logits = cos.scatter(1, yt[rows, None], shifted) * settings.scale
            loss = fn.cross_entropy(logits, yt[rows])
            if at is not None and settings.keep:
                a = at[torch.randint(len(at), (settings.batch,), generator=gen)]
                z = head(a)
                # Relational, not absolute: the photos may move together (a nuisance direction
                # removed from all of them), but their similarities to each other stay put.
                loss = loss + settings.keep * 100 * ((z @ z.T - a @ a.T) ** 2).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
        if validate is None:
            best = head.export()
        elif (score := validate(current := head.export())) >= top - EPOCH_TOLERANCE:
            # Within noise of the best seen, the later epoch wins: the check uses training kinds of
            # edits, which saturate early, while invariance to kinds never seen keeps growing.
            best, top = current, max(top, score)
        if on_epoch:
            on_epoch(epoch + 1, settings.epochs)
        if cancel is not None and cancel.checkpoint():
            return None
    return best


# What stage 1 tries, in this order, when it has photos to validate on: the anchored, wide-margin
# loss suits a space whose nuisance is one shared direction (the constructed test), the free,
# narrow-margin one a space where every edit moves vectors its own way (the tiny random model);
# which a library's model is like only its own held-aside photos can say.
CANDIDATES = (ImageSettings(), ImageSettings(margin=0.2, scale=30.0, keep=0.1), ImageSettings(margin=0.2, scale=30.0,
                                                                                              keep=0.0))


def select_image_head(x: np.ndarray, classes: np.ndarray, epochs: int, seed: int = 0,
                      on_epoch: EpochCallback | None = None, cancel: CancelToken | None = None,
                      anchors: np.ndarray | None = None,
                      validate: Callable[[Head], float] | None = None) -> tuple[Head, ImageSettings, float] | None:
    """The best of ``CANDIDATES`` on ``validate`` (the first alone without it): (head, its settings, its score).

    A later candidate must win by ``CANDIDATE_MARGIN``: the first keeps the
    photos' own neighbourhoods, the safer choice for text search.

    Each candidate's best epoch competes (see ``train_image_head``), and so
    does the untrained identity; None if cancelled. ``on_epoch`` counts the
    epochs of all candidates together.
    """
    candidates = CANDIDATES if validate is not None else CANDIDATES[:1]
    total = epochs * len(candidates)
    best: tuple[Head, ImageSettings, float] | None = None
    for i, settings in enumerate(candidates):
        settings = ImageSettings(**{**settings.__dict__, "epochs": epochs})
        progress = None if on_epoch is None else (lambda done, _n, i=i: on_epoch(i * epochs + done, total))
        head = train_image_head(x, classes, settings, seed, progress, cancel, anchors, validate)
        if head is None:
            return None
        score = validate(head) if validate is not None else 0.0
        if best is None or score > best[2] + CANDIDATE_MARGIN:
            best = (head, settings, score)
    return best


@_one_thread()
def train_text_head(texts: np.ndarray, images: np.ndarray, pairs: np.ndarray, settings: TextSettings = TextSettings(),
                    seed: int = 0, on_epoch: EpochCallback | None = None,
                    cancel: CancelToken | None = None) -> Head | None:
    """Realign text vectors to ``images`` (tuned, fixed); ``pairs``: (text row, image row) per pseudo-caption.

    A share of the photos (``settings.validation``) is kept out of training;
    the head returned is the epoch's that retrieves their photos best from
    their texts, the untrained (identity) head included, so a text head that
    only memorised its pairs is not kept. Returns None if cancelled.
    """
    import torch

    torch.manual_seed(seed)
    tt = torch.from_numpy(np.ascontiguousarray(texts, np.float32))
    it = torch.from_numpy(np.ascontiguousarray(images, np.float32))
    pt = torch.from_numpy(np.asarray(pairs, np.int64).reshape(-1, 2))
    # Every image a text belongs to is its positive (a descriptor fires on many photos); the negatives
    # are all the other images, not just the batch's: the task search poses.
    owns = torch.zeros(len(tt), len(it), dtype=torch.bool)
    owns[pt[:, 0], pt[:, 1]] = True
    held = torch.from_numpy(np.random.default_rng(seed).random(len(it)) < settings.validation)
    val_texts = torch.unique(pt[held[pt[:, 1]], 0])
    train = pt[~held[pt[:, 1]]]
    head = _module(tt.shape[1], settings.hidden or tt.shape[1], seed + 1)
    opt = torch.optim.AdamW(head.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    gen = torch.Generator().manual_seed(seed)

    def score() -> float:
        if not len(val_texts):
            return 0.0
        with torch.no_grad():
            ranked = (head(tt[val_texts]) @ it.T).topk(min(10, len(it)), dim=1).indices
        hits = owns[val_texts[:, None], ranked]
        return float(sum(hits[:, :k].any(1).float().mean() for k in (1, 5, 10)))

    best, best_score = head.export(), score()
    for epoch in range(settings.epochs):
        for rows in torch.randperm(len(train), generator=gen).split(settings.batch):
            ti = train[rows, 0]
            base = tt[ti]
            q = head(base)
            logits = q @ it.T / settings.temperature
            nce = (torch.logsumexp(logits, 1) - torch.logsumexp(logits.masked_fill(~owns[ti], -torch.inf), 1)).mean()
            keep = (1 - (q * base).sum(-1)).mean()
            loss = nce + settings.keep * keep
            opt.zero_grad()
            loss.backward()
            opt.step()
        if (current := score()) > best_score + 1e-9:
            best, best_score = head.export(), current
        if on_epoch:
            on_epoch(epoch + 1, settings.epochs)
        if cancel is not None and cancel.checkpoint():
            return None
    return best
