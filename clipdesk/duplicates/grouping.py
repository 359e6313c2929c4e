"""Confirm candidate pairs into tiers and join them into groups, each with its keeper and evidence.

Tiers, strongest first:

* ``exact``: the same bytes (content hash), or the same decoded pixels under other metadata;
* ``near``: the same shot after an edit: a pHash within ``hash_near`` bits under one of the eight
  rotations/mirrors (or with plain borders trimmed), confirmed by the embeddings being at least ``similar_cos`` apart; or, for the edits
  that move the hash (crops, borders, overlays), the embeddings alone at ``near_cos`` or closer. Never two
  photos with different capture times: a copy keeps its EXIF time or loses it, it never gets another one;
* ``similar``: a series: taken within ``window_s`` of each other (same camera when both say), and
  embeddings at ``similar_cos`` or closer (without meaningful embeddings: pHash within ``hash_similar``).

Groups are the connected components of all confirmed pairs (union-find), so a photo is in at most one
group. A group's tier is the weakest link it needs (edges are joined strongest tier first); each photo's
evidence is its strongest tie to the group's keeper.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from clipdesk.duplicates import candidates as cand
from clipdesk.duplicates.data import DupData
from clipdesk.duplicates.hashes import INVERSE, VARIANTS, popcount
from clipdesk.duplicates.keeper import choose_keeper
from clipdesk.jobs import CancelToken, Progress, ProgressCallback, no_progress

TIERS = ("exact", "near", "similar")
EXACT, NEAR, SIMILAR, NONE = 0, 1, 2, 3
PHASE = "grouping"


@dataclass(frozen=True)
class Thresholds:
    """Defaults for CLIP ViT-B/32: edited copies of one photo sit above ~0.9, shots of one scene ~0.8-0.9.

    ``calibrated`` moves the cosines to the library's own model (see :func:`calibrate`).
    """

    hash_near: int = 10  # of 64 bits; unrelated photos sit at 20+ even at the best of eight variants
    hash_similar: int = 18  # with no embeddings, for bursts: random pairs reach it 1 in ~200 times (16 comparisons)
    near_cos: float = 0.92
    similar_cos: float = 0.80
    window_s: float = 120.0
    calibrated: bool = False


DEFAULT_THRESHOLDS = Thresholds()
# Below this many photos with vectors the neighbour distribution is too thin to calibrate on.
CALIBRATE_MIN = 200


def calibrate(sim: np.ndarray, base: Thresholds = Thresholds()) -> Thresholds:
    """Thresholds relative to the model: b, the median cosine of each photo's 10th neighbour (a photo that is
    close but different), sets near at b + 0.6 (1 - b) and similar at b + 0.3 (1 - b), clamped to sane
    ranges. For ViT-B/32 on a photo library b is about 0.75, which gives 0.90 and 0.82."""
    if sim.shape[0] < CALIBRATE_MIN or sim.shape[1] == 0:
        return base
    b = float(np.median(sim[:, -1]))
    near = float(np.clip(b + 0.6 * (1 - b), 0.85, 0.97))
    similar = float(np.clip(b + 0.3 * (1 - b), 0.70, near - 0.03))
    return Thresholds(base.hash_near, base.hash_similar, near, similar, base.window_s, True)


@dataclass
class Member:
    photo_id: int
    path: str | None
    evidence: dict


@dataclass
class Group:
    tier: str
    keeper: int  # photo id
    keeper_path: str | None
    keeper_reason: str
    members: list[Member] = field(default_factory=list)  # the keeper first

    def as_json(self) -> dict:
        return {"tier": self.tier, "keeper": self.keeper_path, "keeper_reason": self.keeper_reason,
                "photos": [{"path": m.path, "id": m.photo_id, "evidence": m.evidence} for m in self.members]}


def pair_features(data: DupData, pairs: np.ndarray, use_cosine: bool) -> dict[str, np.ndarray]:
    """Hash distance, the variant that gave it, cosine, seconds apart, per pair.

    The distance is the best of i's variants against j's pHash and j's against i's, both ways because
    the trimmed-borders variant only helps from the side that had the border. ``variant`` names j as
    a transform of i: from j's side, the inverse (``hashes.INVERSE``), kept as ``-1 - t``.
    """
    i, j = pairs[:, 0], pairs[:, 1]
    rows = np.arange(len(pairs))
    forward = popcount(data.variants[i] ^ data.phash[j][:, None])
    backward = popcount(data.variants[j] ^ data.phash[i][:, None])
    tf, tb = forward.argmin(axis=1), backward.argmin(axis=1)
    df, db = forward[rows, tf], backward[rows, tb]
    both = data.has_hash[i] & data.has_hash[j]
    hd = np.where(both, np.minimum(df, db), 64)
    best = np.where(df <= db, tf, -1 - tb)
    cos = np.full(len(pairs), np.nan)
    if use_cosine and data.vectors is not None:
        ok = data.has_vector[i] & data.has_vector[j]
        cos[ok] = np.einsum("ij,ij->i", data.vectors[i[ok]], data.vectors[j[ok]])
    return {"hd": hd, "variant": best, "cos": cos, "dt": np.abs(data.taken[i] - data.taken[j])}


def classify(data: DupData, pairs: np.ndarray, th: Thresholds, use_cosine: bool) -> np.ndarray:
    """Each pair's tier code (NONE: not duplicates)."""
    f = pair_features(data, pairs, use_cosine)
    hd, cos, dt = f["hd"], f["cos"], f["dt"]
    i, j = pairs[:, 0], pairs[:, 1]
    same_bytes = np.array([data.content[a] is not None and data.content[a] == data.content[b] for a, b in pairs], bool)
    same_pixels = np.array([data.pixel[a] is not None and data.pixel[a] == data.pixel[b] for a, b in pairs], bool)
    same_shot = np.isnan(dt) | (dt < 1.0)
    no_cos = np.isnan(cos)
    near = same_shot & (((hd <= th.hash_near) & (no_cos | (cos >= th.similar_cos))) | (cos >= th.near_cos))
    cameras_agree = np.array([not (data.camera[a] and data.camera[b]) or data.camera[a] == data.camera[b]
                              for a, b in zip(i, j, strict=True)], bool)
    series = (dt <= th.window_s) & cameras_agree
    similar = series & np.where(no_cos, hd <= th.hash_similar, cos >= th.similar_cos)
    tier = np.full(len(pairs), NONE)
    tier[similar] = SIMILAR
    tier[near] = NEAR
    tier[same_bytes | same_pixels] = EXACT
    return tier


def candidate_pairs(data: DupData, th: Thresholds, use_cosine: bool, index=None) -> tuple[np.ndarray, Thresholds]:
    """Every source of candidates (``candidates.py``), and the thresholds calibrated on the neighbours found.

    ``index``: a search graph over exactly the rows with vectors, labelled by photo id (the library's).
    """
    sources = [cand.equal_key_pairs(data.content), cand.equal_key_pairs(data.pixel),
               cand.band_pairs(data.phash, data.variants, data.has_hash, th.hash_similar), cand.time_pairs(data.taken, th.window_s)]
    if use_cosine and data.vectors is not None and data.has_vector.sum() > 1:
        rows = np.flatnonzero(data.has_vector)
        nbr, sim = cand.knn(data.vectors[rows], index=index, labels=None if index is None else data.ids[rows])
        th = calibrate(sim, th) if not th.calibrated else th
        sources.append(rows[cand.knn_pairs(nbr, sim, th.similar_cos)])
    return cand._unique(np.concatenate(sources)), th


def find_groups(data: DupData, th: Thresholds = Thresholds(), use_cosine: bool = True, index=None,
                progress: ProgressCallback = no_progress, cancel: CancelToken | None = None,
                tier: str | None = None) -> list[Group]:
    """The library's duplicate groups, strongest tier first, then largest; ``tier`` keeps only that tier's."""
    progress(Progress(PHASE, 0, 3))
    pairs, th = candidate_pairs(data, th, use_cosine, index)
    progress(Progress(PHASE, 1, 3))
    if cancel is not None and cancel.checkpoint():
        return []
    tiers = classify(data, pairs, th, use_cosine)
    keep = tiers < NONE
    roots, group_tier = union_find(len(data), pairs[keep], tiers[keep])
    progress(Progress(PHASE, 2, 3))
    groups = [make_group(data, rows, group_tier[r], th, use_cosine) for r, rows in components(roots).items()]
    groups.sort(key=lambda g: (TIERS.index(g.tier), -len(g.members), g.keeper))
    progress(Progress(PHASE, 3, 3))
    return [g for g in groups if tier is None or g.tier == tier]


def union_find(n: int, pairs: np.ndarray, tiers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(root of each row, tier of each root's component): edges joined strongest first (Kruskal), so a
    component's tier is that of the last, weakest edge it needed."""
    parent = np.arange(n)
    comp_tier = np.full(n, EXACT)

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for k in np.argsort(tiers, kind="stable"):
        a, b = find(int(pairs[k, 0])), find(int(pairs[k, 1]))
        if a != b:
            parent[b] = a
            comp_tier[a] = max(comp_tier[a], comp_tier[b], int(tiers[k]))
    roots = np.array([find(x) for x in range(n)], np.int64)
    return roots, comp_tier


def components(roots: np.ndarray) -> dict[int, np.ndarray]:
    """Root -> its rows, for components of two or more."""
    order = np.argsort(roots, kind="stable")
    bounds = np.flatnonzero(np.diff(roots[order])) + 1
    return {int(roots[c[0]]): c for c in np.split(order, bounds) if len(c) > 1}


def make_group(data: DupData, rows: np.ndarray, tier_code: int, th: Thresholds, use_cosine: bool) -> Group:
    if data.facts is not None:
        keeper, reason = choose_keeper([data.facts[r] for r in rows])
        k = int(rows[[data.facts[r].photo_id for r in rows].index(keeper.photo_id)])
    else:
        k, reason = int(rows[0]), "first"
    others = np.array([r for r in rows if r != k], np.int64)
    pairs = np.stack([np.full(len(others), k), others], axis=1)
    f = pair_features(data, pairs, use_cosine)
    tiers = classify(data, pairs, th, use_cosine)
    path = (lambda r: data.facts[r].path) if data.facts is not None else (lambda r: None)
    members = [Member(int(data.ids[k]), path(k), {"keeper": True})]
    for n, r in enumerate(others):
        members.append(Member(int(data.ids[r]), path(int(r)), evidence(data, k, int(r), f, n, int(tiers[n]), th)))
    return Group(TIERS[tier_code], int(data.ids[k]), path(k), reason, members)


def evidence(data: DupData, k: int, r: int, f: dict, n: int, tier_code: int, th: Thresholds) -> dict:
    """Why photo ``r`` goes with keeper ``k``: the facts measured between the two."""
    if data.content[k] is not None and data.content[k] == data.content[r]:
        return {"content_hash": True}
    if data.pixel[k] is not None and data.pixel[k] == data.pixel[r]:
        return {"pixels": True}
    out: dict = {}
    if data.has_hash[k] and data.has_hash[r]:
        out["phash_distance"] = int(f["hd"][n])
        if out["phash_distance"] <= th.hash_near:  # farther, the best variant is chance, not a transform
            t = int(f["variant"][n])
            name = VARIANTS[t if t >= 0 else -1 - t][0]
            out["transform"] = name if t >= 0 else INVERSE.get(name, name)
    if not np.isnan(f["cos"][n]):
        out["cosine"] = round(float(f["cos"][n]), 4)
    if not np.isnan(f["dt"][n]):
        out["seconds_apart"] = round(float(f["dt"][n]), 1)
    if tier_code == NONE:
        out["linked_via"] = "another photo of the group"  # joined through a third photo, not directly
    return out


def evidence_words(evidence: dict) -> str:
    """Evidence as a person reads it: 'same bytes', 'pHash 4 bits apart (rot90) · cosine 0.97 · 2 s apart'."""
    if evidence.get("keeper"):
        return "keeper"
    if evidence.get("content_hash"):
        return "same bytes"
    if evidence.get("pixels"):
        return "same pixels, other metadata"
    parts = []
    if "phash_distance" in evidence:
        turned = evidence.get("transform")
        parts.append(f"pHash {evidence['phash_distance']} bits apart"
                     + (f" ({turned})" if turned and turned != "identity" else ""))
    if "cosine" in evidence:
        parts.append(f"cosine {evidence['cosine']:.3f}")
    if "seconds_apart" in evidence:
        parts.append(f"taken {evidence['seconds_apart']:g} s apart")
    if "linked_via" in evidence:
        parts.append(f"linked via {evidence['linked_via']}")
    return " · ".join(parts)
