"""SQLite store (source of truth) and the vector index rebuilt from it."""
