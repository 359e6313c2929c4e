"""How much does accept/reject feedback improve auto-labels on held-out photos?

Constructed embeddings with known answers (no model, no download): every
label has a true direction, and its descriptors lean on an unrelated "loud"
direction too (as CLIP descriptors lean on context: "a dog" ~ "indoors"), so
zero-shot scoring makes mistakes a few answers can fix. The real pipeline
runs: ``label_library`` (zero-shot), then ``set_feedback`` on photos from a
feedback pool, then ``label_library`` again (taught labels decided by their
probe). Figures are on held-out photos the user never answered.

    .venv/bin/python bench/label_feedback.py [--seeds 3] [--photos 1000]

Answers come two ways: k random yes/no photos per label (a user browsing), or
the first photos of the GUI's review queue (most uncertain first) until k yes
and k no are in.
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

import numpy as np
from _common import REPO  # noqa: F401 - puts the repo on sys.path

from clipdesk.labels.feedback import set_feedback
from clipdesk.labels.review import review_queue
from clipdesk.labels.run import label_library
from clipdesk.labels.scoring import BACKGROUND_PROMPTS
from clipdesk.labels.vocab import LabelDef, Vocabulary
from clipdesk.store.db import Library
from clipdesk.store.models import Embedding, Label, Photo, utcnow

DIM, LABELS, POOL = 64, 6, 300
COMMON, BACKGROUND = DIM - 1, DIM - 2


def unit(m):
    return m / np.linalg.norm(m, axis=-1, keepdims=True)


class ConstructedEncoder:
    """Descriptor ``label<j> d<k>`` -> its prior vector; background prompts -> one axis."""

    key = "bench:constructed"

    def __init__(self, priors: np.ndarray) -> None:
        self.priors = priors

    def encode_text(self, texts):
        out = []
        for t in texts:
            if t in BACKGROUND_PROMPTS:
                v = np.zeros(DIM)
                v[BACKGROUND] = 1
            else:
                j, k = map(int, re.search(r"d(\d+)-(\d+)", t).groups())
                v = self.priors[j, k]
            out.append(v)
        return unit(np.asarray(out, np.float32))


def make_data(rng, n: int):
    t = np.eye(DIM)[:LABELS]  # true directions
    loud = np.eye(DIM)[10:10 + LABELS]  # unrelated directions the descriptors lean on
    priors = np.stack([[0.6 * t[j] + 0.8 * loud[j] + rng.normal(0, 0.05, DIM) for _ in range(3)]
                       for j in range(LABELS)])
    y = rng.random((n, LABELS)) < 0.25
    x = rng.normal(0, 0.05, (n, DIM))
    x += 0.3 * y.astype(float) @ t + rng.normal(0, 0.3, (n, LABELS)) @ loud
    x[:, COMMON] += 1.0
    x[:, BACKGROUND] += 0.25
    return unit(x).astype(np.float32), y, priors


def fill(library: Library, x: np.ndarray) -> list[int]:
    with library.session() as s, s.begin():
        ids = []
        for i, v in enumerate(x):
            photo = Photo(path=f"/bench/{i}.jpg", size=1, mtime_ns=i, content_hash=f"h{i}", format="JPEG",
                          width=1, height=1, frames=1, added_at=utcnow())
            s.add(photo)
            s.flush()
            s.add(Embedding(photo_id=photo.id, model_key=ConstructedEncoder.key, dim=DIM,
                            vector=v.astype("<f2").tobytes(), content_hash=photo.content_hash, created_at=utcnow()))
            ids.append(photo.id)
    return ids


def held_out_f1(library, ids, y) -> tuple[float, float, float]:
    """Mean precision, recall, F1 over labels, on photos outside the feedback pool."""
    with library.session() as s:
        said = {(r.photo_id, r.label) for r in s.scalars(select_labels())}
    ps, rs, fs = [], [], []
    for j in range(LABELS):
        pred = np.array([(pid, f"label{j}") in said for pid in ids[POOL:]])
        true = y[POOL:, j]
        tp = float((pred & true).sum())
        p = tp / pred.sum() if pred.sum() else 0.0
        r = tp / true.sum()
        ps.append(p)
        rs.append(r)
        fs.append(2 * p * r / (p + r) if p + r else 0.0)
    return float(np.mean(ps)), float(np.mean(rs)), float(np.mean(fs))


def select_labels():
    from sqlalchemy import select

    return select(Label).where(Label.status.in_(("proposed", "accepted")))


def answer_random(library, ids, y, k: int, rng) -> None:
    """k yes and k no photos per label, picked at random from the pool."""
    for j in range(LABELS):
        pos = rng.permutation(np.flatnonzero(y[:POOL, j]))[:k]
        neg = rng.permutation(np.flatnonzero(~y[:POOL, j]))[:k]
        for i, truth in [(i, True) for i in pos] + [(i, False) for i in neg]:
            set_feedback(library, ids[i], f"label{j}", truth)


def answer_queue(library, ids, y, k: int, encoder, vocab, per_round: int = 6) -> None:
    """2k answers per label from the top of the review queue, relearning between rounds (as in the app)."""
    pool = {pid: i for i, pid in enumerate(ids[:POOL])}
    for _ in range(-(-2 * k // per_round)):
        for j in range(LABELS):
            name = f"label{j}"
            items = [it for it in review_queue(library, encoder, vocab, limit=POOL, label=name)
                     if it.photo_id in pool][:per_round]  # held-out photos: the user never sees them
            for it in items:
                set_feedback(library, it.photo_id, name, bool(y[pool[it.photo_id], j]))
        label_library(library, encoder, vocab)


def run(seed: int, n: int, ks: list[int]) -> list[tuple]:
    rng = np.random.default_rng(seed)
    x, y, priors = make_data(rng, n)
    encoder = ConstructedEncoder(priors)
    vocab = Vocabulary([LabelDef(f"label{j}", tuple(f"d{j}-{k}" for k in range(3))) for j in range(LABELS)])
    rows = []
    for how in ("random", "queue"):
        for k in ks:
            with tempfile.TemporaryDirectory() as tmp:
                library = Library(Path(tmp) / "lib")
                ids = fill(library, x)
                label_library(library, encoder, vocab)
                before = held_out_f1(library, ids, y)
                if how == "random":
                    answer_random(library, ids, y, k, np.random.default_rng(seed + 100))
                else:
                    answer_queue(library, ids, y, k, encoder, vocab)
                report = label_library(library, encoder, vocab)
                after = held_out_f1(library, ids, y)
                library.close()
            rows.append((seed, how, k, len(report.learned), before, after))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--photos", type=int, default=1000)
    ap.add_argument("--k", default="3,5,10,20", help="yes and no answers per label (each)")
    args = ap.parse_args()
    ks = [int(k) for k in args.k.split(",")]
    rows = [r for seed in range(args.seeds) for r in run(seed, args.photos, ks)]
    print(f"{args.photos} photos, {LABELS} labels, answers from the first {POOL}; "
          f"held-out {args.photos - POOL}; mean over {args.seeds} seeds and the labels")
    print("answers per label: 2k (random: k yes + k no; queue: the first 2k pool photos it shows)")
    print(f"{'answers':>8} {'k':>6} {'taught':>6} | {'zero-shot P/R/F1':>18} | {'taught P/R/F1':>18} | F1 gain")
    for how in ("random", "queue"):
        for k in ks:
            sel = [r for r in rows if r[1] == how and r[2] == k]
            b = np.mean([r[4] for r in sel], axis=0)
            a = np.mean([r[5] for r in sel], axis=0)
            taught = np.mean([r[3] for r in sel])
            print(f"{how:>8} {k:>6} {taught:>6.1f} | {b[0]:.2f} {b[1]:.2f} {b[2]:.2f}     | "
                  f"{a[0]:.2f} {a[1]:.2f} {a[2]:.2f}     | {a[2] - b[2]:+.2f}")


if __name__ == "__main__":
    main()
