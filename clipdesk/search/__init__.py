"""Search: the query syntax (``query``), keyword signals (``keywords``), their fusion with CLIP
(``fusion``) and the searcher that runs a query against a library (``searcher``)."""

from clipdesk.search.query import Filters, Term, filter_photo_ids, parse_text_query
from clipdesk.search.searcher import (
    IMAGE_CUTOFF_MIN_LIBRARY,
    IMAGE_Z_CUTOFF,
    NULL_PROMPTS,
    SORTS,
    Hit,
    Searcher,
    SearchResult,
)

__all__ = ["Filters", "Hit", "IMAGE_CUTOFF_MIN_LIBRARY", "IMAGE_Z_CUTOFF", "NULL_PROMPTS", "SORTS", "SearchResult",
           "Searcher", "Term", "filter_photo_ids", "parse_text_query"]
