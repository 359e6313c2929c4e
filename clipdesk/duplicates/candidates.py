"""Candidate pairs for the duplicate finder, never all pairs.

Four cheap sources, each about linear in the library: equal content or pixel
hashes (sorting), pHash bands (multi-index hashing: the 64 bits cut into
four 16-bit bands, so any two hashes within 3 bits share a band exactly, and
many farther ones do; every one of a photo's variants (rotations, mirrors, borders trimmed)
is looked up), the embedding index's nearest neighbours (crops, borders and
overlays move the hash but not the embedding), and neighbours in time
(bursts). Confirming a candidate is ``grouping.py``'s job.
"""

from __future__ import annotations

import numpy as np

from clipdesk.duplicates.hashes import popcount

BANDS = 4
BAND_BITS = 64 // BANDS
# A bucket this full is a degenerate hash (blank or one-colour images all hash alike): its pairs come from the
# embedding neighbours instead, so one bucket cannot turn into millions of pairs.
MAX_BUCKET = 64
KNN = 10
EXACT_KNN_BELOW = 4000  # below this many vectors a blocked matrix product beats building a graph
TIME_NEIGHBOURS = 20


def equal_key_pairs(keys: list[str | None]) -> np.ndarray:
    """Pairs (i, j) of rows with the same non-empty key: each chained to the next, which is all union-find needs."""
    order = sorted((k, i) for i, k in enumerate(keys) if k)
    pairs = [(a[1], b[1]) for a, b in zip(order, order[1:], strict=False) if a[0] == b[0]]
    return np.array(pairs, np.int64).reshape(-1, 2)


def band_pairs(phash: np.ndarray, variants: np.ndarray, valid: np.ndarray, max_distance: int = 64) -> np.ndarray:
    """Pairs (i, j), i's variant sharing a band with j's pHash and within ``max_distance`` bits of it.

    ``valid`` masks rows that have hashes. The distance is checked here, in
    bulk: at 100k photos chance band collisions are millions of pairs, of
    which only a few thousand are anywhere near.
    """
    rows = np.flatnonzero(valid)
    out = []
    for b in range(BANDS):
        shift, mask = np.uint64(b * BAND_BITS), np.uint64((1 << BAND_BITS) - 1)
        keys = (phash[rows] >> shift) & mask
        order = np.argsort(keys, kind="stable")
        sorted_keys, sorted_rows = keys[order], rows[order]
        for t in range(variants.shape[1]):
            q = (variants[rows, t] >> shift) & mask
            lo = np.searchsorted(sorted_keys, q, "left")
            hi = np.searchsorted(sorted_keys, q, "right")
            size = hi - lo
            keep = (size > 0) & (size <= MAX_BUCKET)
            if not keep.any():
                continue
            qi, lo, size = rows[keep], lo[keep], size[keep]
            starts = np.repeat(lo - np.cumsum(size) + size, size) + np.arange(size.sum())
            a, b = np.repeat(qi, size), sorted_rows[starts]
            close = popcount(variants[a, t] ^ phash[b]) <= max_distance
            out.append(np.stack([a[close], b[close]], axis=1))
    return _unique(np.concatenate(out) if out else np.zeros((0, 2), np.int64))


def knn(matrix: np.ndarray, k: int = KNN, index=None, labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(neighbour rows, cosines), n x k, self excluded; exact below ``EXACT_KNN_BELOW``, else the HNSW graph.

    ``index``: a ``store.graph.Graph`` over the same rows, e.g. the library's saved one
    (built here when absent); ``labels``: its label of each row, ascending (photo
    ids), when those are not the row numbers.
    """
    n = len(matrix)
    k = min(k, n - 1)
    if k <= 0:
        return np.zeros((n, 0), np.int64), np.zeros((n, 0), np.float32)
    if n < EXACT_KNN_BELOW and index is None:
        nbr, sim = np.zeros((n, k), np.int64), np.zeros((n, k), np.float32)
        for start in range(0, n, 1024):
            s = matrix[start:start + 1024] @ matrix.T
            s[np.arange(len(s)), np.arange(start, start + len(s))] = -np.inf
            top = np.argpartition(-s, k - 1, axis=1)[:, :k]
            nbr[start:start + len(s)] = top
            sim[start:start + len(s)] = np.take_along_axis(s, top, axis=1)
        return nbr, sim
    if index is None:
        from clipdesk.store.graph import Graph

        index = Graph.build(np.arange(n), lambda a, b: matrix[a:b], matrix.shape[1])
    found, _ = index.search(matrix, k + 1, ef=max(64, 2 * k))
    missing = found < 0  # a graph that found fewer than asked: padded with the row itself, at the lowest cosine
    if labels is not None:
        found = np.minimum(np.searchsorted(labels, np.where(missing, labels[0], found)), n - 1)
    found = np.where(missing, np.arange(n)[:, None], found)
    # Exact cosines of the pairs found (the graph keeps its vectors at bf16, and the thresholds compare these).
    sim = np.empty(found.shape, np.float32)
    for start in range(0, n, 4096):
        part = slice(start, start + 4096)
        sim[part] = np.einsum("ij,ikj->ik", matrix[part], matrix[found[part]])
    sim[missing] = -1.0
    self_hit = found == np.arange(n)[:, None]
    # Drop each row's own entry (or its farthest, where the graph missed itself).
    drop = np.where(self_hit.any(axis=1), self_hit.argmax(axis=1), k)
    keep = np.ones_like(found, bool)
    keep[np.arange(n), drop] = False
    return found[keep].reshape(n, k), sim[keep].reshape(n, k)


def knn_pairs(nbr: np.ndarray, sim: np.ndarray, min_cos: float) -> np.ndarray:
    """Pairs (i, j) with j among i's neighbours at cosine >= ``min_cos``."""
    i, col = np.nonzero(sim >= min_cos)
    return _unique(np.stack([i, nbr[i, col]], axis=1))


def time_pairs(taken: np.ndarray, window_s: float, neighbours: int = TIME_NEIGHBOURS) -> np.ndarray:
    """Pairs of photos taken within ``window_s`` of each other (up to ``neighbours`` each way); NaN: no time."""
    rows = np.flatnonzero(~np.isnan(taken))
    order = rows[np.argsort(taken[rows], kind="stable")]
    out = []
    for off in range(1, min(neighbours, len(order) - 1) + 1):
        a, b = order[:-off], order[off:]
        close = (taken[b] - taken[a]) <= window_s
        if not close.any():
            break
        out.append(np.stack([a[close], b[close]], axis=1))
    return _unique(np.concatenate(out) if out else np.zeros((0, 2), np.int64))


def _unique(pairs: np.ndarray) -> np.ndarray:
    """Undirected pairs without self-pairs or repeats, smaller row first."""
    pairs = pairs[pairs[:, 0] != pairs[:, 1]].astype(np.int64)
    if not len(pairs):
        return pairs.reshape(0, 2)
    lo, hi = pairs.min(axis=1), pairs.max(axis=1)
    key = np.unique(lo << np.int64(32) | hi)  # one int64 per pair: far faster than unique rows
    return np.stack([key >> np.int64(32), key & np.int64(0xFFFFFFFF)], axis=1)
