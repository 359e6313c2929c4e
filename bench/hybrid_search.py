"""One ranking over every signal: what the keyword signals cost per query, side by side with CLIP alone.

A temporary library of N photos (structured 512-d vectors as in
``search_latency.py``) in 200 named folders, where every photo has a caption
(COCO and Flickr8k captions from the shared data), one in ten has words read
in it (OCR rows written by ``ocr.store.write_results``, trigram-indexed), and
every photo carries three labels from a 300-name vocabulary. The same text
queries (words drawn from the captions) run interleaved through the real
``Searcher`` twice: fused (CLIP + OCR + captions + labels + names) and CLIP
alone (the keyword signals switched off), both exact search, k=20.

    .venv/bin/python bench/hybrid_search.py                    # 10k and 100k, about 4 min
"""

from __future__ import annotations

import time
from pathlib import Path

import _common  # noqa: F401 - sets up sys.path
import numpy as np
from _common import pct, run_sizes, shared_data, wait_quiet
from search_latency import DIM, MODEL_KEY, make_space, structured_vectors, text_like_queries
from sqlalchemy import insert

from clipdesk.captions.store import query_words
from clipdesk.ocr.engine import OcrLine, OcrResult
from clipdesk.ocr.store import write_results
from clipdesk.search import NULL_PROMPTS, Searcher, Term
from clipdesk.search import keywords as keywords_mod
from clipdesk.store.db import Library
from clipdesk.store.models import Caption, Embedding, Folder, Label, Photo, utcnow

K = 20
BOX = [[0.0, 0.0], [100.0, 0.0], [100.0, 20.0], [0.0, 20.0]]


class _Encoder:
    def __init__(self, texts: dict[str, np.ndarray]):
        self.key, self.texts = MODEL_KEY, texts

    def encode_text(self, texts):
        return np.stack([self.texts[t] for t in texts])


def _captions() -> list[str]:
    root = shared_data() / "captions"
    lines = []
    for name in ("coco_val2017_captions.txt", "flickr8k_captions.txt"):
        lines += [ln.strip() for ln in (root / name).read_text().splitlines() if ln.strip()]
    return lines


def fill(library: Library, n: int, vecs: np.ndarray, captions: list[str], rng) -> list[str]:
    now = utcnow()
    vocab = sorted({w for c in captions[:20000] for w in query_words(c) if w.isalpha() and len(w) > 3})
    folders = [f"/bench/{rng.choice(vocab).title()} {2000 + i % 25} ({i})" for i in range(200)]
    label_names = list(rng.choice(vocab, 300, replace=False))
    with library.engine.begin() as conn:
        conn.execute(insert(Folder.__table__), [{"id": i + 1, "path": p, "added_at": now, "scan_complete": True}
                                                for i, p in enumerate(folders)])
        for start in range(0, n, 20_000):
            rows = range(start, min(start + 20_000, n))
            conn.execute(insert(Photo.__table__), [
                {"id": i + 1, "folder_id": i % 200 + 1, "path": f"{folders[i % 200]}/IMG_{i:06d}.jpg",
                 "size": 1000 + i, "mtime_ns": i, "content_hash": f"{i:040x}", "format": "JPEG", "width": 4000,
                 "height": 3000, "frames": 1, "added_at": now} for i in rows])
            blobs = vecs[start:start + 20_000].astype("<f2")
            conn.execute(insert(Embedding.__table__), [
                {"photo_id": i + 1, "model_key": MODEL_KEY, "dim": DIM, "vector": blobs[i - start].tobytes(),
                 "content_hash": f"{i:040x}", "created_at": now} for i in rows])
            conn.execute(insert(Caption.__table__), [
                {"photo_id": i + 1, "text": captions[int(rng.integers(len(captions)))], "source": "auto",
                 "created_at": now} for i in rows])
            conn.execute(insert(Label.__table__), [
                {"photo_id": i + 1, "label": label_names[(i * 7 + j * 31) % 300], "source": "auto",
                 "status": "proposed", "created_at": now} for i in rows for j in range(3)])
    words_on_signs = [f"{w.upper()} {int(rng.integers(1000, 9999))}" for w in rng.choice(vocab, 500)]
    with library.session() as s, s.begin():
        read = {i + 1: OcrResult([OcrLine(words_on_signs[int(rng.integers(500))], BOX, 0.9)], f"{i:040x}")
                for i in range(0, n, 10)}
        write_results(s, "bench-ocr", read, {})
    return vocab


def run(n: int, args, tmp: Path) -> dict:
    rng = np.random.default_rng(n)
    space = make_space(n)
    captions = _captions()
    library = Library(tmp / f"lib-{n}")
    try:
        t0 = time.perf_counter()
        vocab = fill(library, n, structured_vectors(n, 1, *space), captions, rng)
        fill_s = time.perf_counter() - t0
        qvecs = text_like_queries(args.queries, 3, *space)
        texts = [" ".join(rng.choice(vocab, int(rng.integers(1, 4)), replace=False)) for _ in range(args.queries)]
        enc = _Encoder({t: v for t, v in zip(texts, qvecs, strict=True)}
                       | {p: v for p, v in zip(NULL_PROMPTS, text_like_queries(5, 9, *space), strict=True)})
        searcher = Searcher(library, enc, hnsw_min_size=10**12)
        searcher.index.vectors  # noqa: B018 - load once, outside the timings
        real_gather = keywords_mod.KeywordSignals.gather
        fused_ms, clip_ms, extra = [], [], []
        for t in texts[:3]:
            searcher.search([Term("text", t)], k=K)
        if args.wait_quiet:
            wait_quiet(args.wait_quiet, max_wait=60.0, quiet=True)
        for i, text in enumerate(texts):
            for mode in (("fused", "clip") if i % 2 == 0 else ("clip", "fused")):
                keywords_mod.KeywordSignals.gather = real_gather if mode == "fused" else (lambda self, among: {})
                t0 = time.perf_counter()
                result = searcher.search([Term("text", text)], k=K)
                (fused_ms if mode == "fused" else clip_ms).append((time.perf_counter() - t0) * 1000)
                if mode == "fused":
                    extra.append(sum(any(w["source"] != "clip" for w in h.why) for h in result.hits))
        keywords_mod.KeywordSignals.gather = real_gather
    finally:
        library.close()
    res = {"n": n, "fill_s": fill_s, "fused_p50": pct(fused_ms, 50), "fused_p95": pct(fused_ms, 95),
           "clip_p50": pct(clip_ms, 50), "clip_p95": pct(clip_ms, 95), "keyword_hits": float(np.mean(extra))}
    print(f"\n== {n:,} photos: captions on all, OCR text on {n // 10:,}, 3 labels each, 200 named folders; "
          f"{len(texts)} text queries of 1-3 caption words, k={K} (filled in {fill_s:.0f} s)")
    print(f"  CLIP alone   p50 {res['clip_p50']:7.1f} ms   p95 {res['clip_p95']:7.1f} ms")
    print(f"  fused        p50 {res['fused_p50']:7.1f} ms   p95 {res['fused_p95']:7.1f} ms   "
          f"(ratio p50 {res['fused_p50'] / res['clip_p50']:.1f}x; results with keyword evidence: "
          f"{res['keyword_hits']:.1f} of {K} on average)")
    return res


def main() -> None:
    run_sizes(__doc__, run, "10000,100000", lambda ap: (ap.add_argument("--queries", type=int, default=60)))


if __name__ == "__main__":
    main()
