"""The duplicate finder end to end, as the CLI and the app run it: hash what is new, then group."""

from __future__ import annotations

from dataclasses import dataclass, field

from clipdesk.duplicates.candidates import EXACT_KNN_BELOW
from clipdesk.duplicates.compute import HashReport, compute_hashes
from clipdesk.duplicates.data import load_data
from clipdesk.duplicates.grouping import DEFAULT_THRESHOLDS, Group, Thresholds, find_groups
from clipdesk.duplicates.trash import reconcile
from clipdesk.jobs import CancelToken, ProgressCallback, no_progress
from clipdesk.store.db import Library
from clipdesk.store.vectors import VectorIndex


@dataclass
class FindResult:
    groups: list[Group] = field(default_factory=list)
    hashing: HashReport | None = None
    thresholds: Thresholds | None = None
    used_embeddings: bool = False
    cancelled: bool = False


def find_duplicates(library: Library, model_key: str | None, use_cosine: bool = True, tier: str | None = None,
                    thresholds: Thresholds = DEFAULT_THRESHOLDS, progress: ProgressCallback = no_progress,
                    cancel: CancelToken | None = None) -> FindResult:
    """Hash the photos that need it, settle interrupted trash moves, and group.

    ``use_cosine=False`` (the test-only random model, whose vectors mean
    nothing) groups on hashes and capture times alone.
    """
    cancel = cancel or CancelToken()
    result = FindResult(thresholds=thresholds)
    result.hashing = compute_hashes(library, progress=progress, cancel=cancel)
    if result.hashing.cancelled:
        result.cancelled = True
        return result
    reconcile(library)
    data = load_data(library, model_key if use_cosine else None)
    result.used_embeddings = data.vectors is not None
    index = None
    if data.vectors is not None and data.has_vector.sum() >= EXACT_KNN_BELOW:
        # The library's saved graph (built and saved on first use, reused while the vectors are unchanged).
        index = VectorIndex(library, model_key, hnsw_min_size=0).hnsw()
    result.groups = find_groups(data, thresholds, use_cosine, index, progress=progress, cancel=cancel, tier=tier)
    result.cancelled = cancel.cancelled
    return result
