"""Core settings, passed in by the CLI or the GUI; core never reads QSettings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

# Below this many vectors a brute-force matrix product beats HNSW on a laptop
# CPU (bench/search_latency.py; perf-facts: 11 ms exact at 100k, 104 ms at 1M).
DEFAULT_HNSW_MIN_SIZE = 300_000


def default_hnsw_min_size() -> int:
    """``CLIPDESK_HNSW_MIN_SIZE`` overrides the threshold (tests; a user who wants the graph sooner or never)."""
    return int(os.environ.get("CLIPDESK_HNSW_MIN_SIZE", DEFAULT_HNSW_MIN_SIZE))


def default_decode_workers() -> int:
    # Leave a core to inference, but never fewer than two workers: on 2 cores two
    # workers keep the model fed better than one (bench/index_throughput.py:
    # 0.94 vs 0.89 on small photos, 0.74-0.85 vs 0.65 on 12 MP ones).
    return max(2, (os.cpu_count() or 2) - 1)


@dataclass
class CoreConfig:
    """Settings the core needs; every field has a sensible default."""

    model: str | None = None  # None: the library's current model, else the default preset
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    batch_size: int = 32
    decode_workers: int = -1  # -1: choose from the CPU count; 0: decode inline
    hnsw_min_size: int = field(default_factory=default_hnsw_min_size)

    def workers(self) -> int:
        return default_decode_workers() if self.decode_workers < 0 else self.decode_workers
