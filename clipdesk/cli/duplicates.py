"""``clipdesk duplicates``."""

from __future__ import annotations


def add_parsers(sub, common) -> None:
    pass
