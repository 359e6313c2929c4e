"""Errors that reach the user carry a plain message; nothing else should."""

from __future__ import annotations


class ClipdeskError(Exception):
    """Base class: ``str(exc)`` is a complete, user-facing sentence."""

    exit_code = 1


class LibraryError(ClipdeskError):
    """The library directory or database cannot be used."""


class ModelNotAvailable(ClipdeskError):
    """Model weights are missing and could not be fetched."""

    exit_code = 3


class ModelSpecError(ClipdeskError):
    """A model name that clipdesk cannot interpret."""

    exit_code = 2


class PrecisionUnsupported(ClipdeskError):
    """A precision the engine or device cannot compute (a missing kernel, an fp32-only engine)."""

    exit_code = 2


class QueryError(ClipdeskError):
    """A search query that cannot be run (empty, unknown photo, bad syntax)."""

    exit_code = 2


class TrainingUnavailable(ClipdeskError):
    """Training (tuning, the caption decoder) needs PyTorch, which this installation lacks."""

    exit_code = 3


class NotIndexed(ClipdeskError):
    """The library has no embeddings for the requested model."""

    exit_code = 4


class Cancelled(ClipdeskError):
    """A long operation stopped because the user asked it to."""

    exit_code = 130
