"""Retrieval evaluation: metrics, benchmarks built from the shared photos, ``clipdesk eval retrieval``."""
