"""Which photo of a group to keep, and why, in words.

The order: most pixels (a resized copy lost detail), then richest metadata
(an original keeps its date, camera and GPS; re-encodes and messaging-app
copies usually lose them), then the least compressed (bytes per pixel,
compared only within one format: a PNG of a JPEG is bigger, not better),
then the oldest (taken, else file time: the original came first), then the
lowest id (stable).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class PhotoFacts:
    photo_id: int
    path: str
    width: int
    height: int
    size: int
    format: str
    mtime_ns: int
    taken_at: datetime | None
    has_camera: bool
    has_gps: bool

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def metadata(self) -> int:
        return int(self.taken_at is not None) + int(self.has_camera) + int(self.has_gps)

    @property
    def bytes_per_pixel(self) -> float:
        return self.size / max(1, self.pixels)

    @property
    def age_key(self) -> float:
        return self.taken_at.timestamp() if self.taken_at is not None else self.mtime_ns / 1e9


def choose_keeper(photos: list[PhotoFacts]) -> tuple[PhotoFacts, str]:
    """The photo to keep and the reason, e.g. 'largest (4000×3000 vs 1024×768 at most)'."""
    most_pixels = max(p.pixels for p in photos)
    pool = [p for p in photos if p.pixels == most_pixels]
    reasons = []
    if len(pool) < len(photos):
        runner = max(p.pixels for p in photos if p.pixels < most_pixels)
        other = next(p for p in photos if p.pixels == runner)
        reasons.append(f"largest ({pool[0].width}×{pool[0].height} vs {other.width}×{other.height} at most)")
    richest = max(p.metadata for p in pool)
    if any(p.metadata < richest for p in pool):
        pool = [p for p in pool if p.metadata == richest]
        reasons.append(f"richest metadata ({_metadata_words(pool[0])})")
    formats = {p.format for p in pool}
    if len(pool) > 1 and len(formats) == 1:
        best = max(p.bytes_per_pixel for p in pool)
        if any(p.bytes_per_pixel < best for p in pool):
            pool = [p for p in pool if p.bytes_per_pixel == best]
            reasons.append(f"least compressed ({best:.2f} bytes per pixel, {pool[0].format})")
    if len(pool) > 1:
        oldest = min(p.age_key for p in pool)
        if any(p.age_key > oldest for p in pool):
            pool = [p for p in pool if p.age_key == oldest]
            when = pool[0].taken_at or datetime.fromtimestamp(pool[0].mtime_ns / 1e9)
            reasons.append(f"oldest ({'taken' if pool[0].taken_at else 'file date'} {when:%Y-%m-%d %H:%M:%S})")
    keeper = min(pool, key=lambda p: p.photo_id)
    if not reasons:
        return keeper, "all equally good (same size, metadata and compression): the first added is kept"
    if len(pool) > 1:
        reasons.append("the first added among equals")
    return keeper, "; ".join(reasons)


def _metadata_words(p: PhotoFacts) -> str:
    words = [w for w, ok in (("date taken", p.taken_at is not None), ("camera", p.has_camera), ("GPS", p.has_gps))
             if ok]
    return ", ".join(words) or "none"
