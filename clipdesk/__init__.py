"""clipdesk: find photos in ordinary folders by meaning, offline.

Kept import-light on purpose: decode worker processes import this package and
must not pay for torch or SQLAlchemy.
"""

__version__ = "0.1.0"
