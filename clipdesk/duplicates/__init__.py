"""Duplicates in tiers with evidence (exact, near, similar), a suggested keeper, and trash with undo."""
