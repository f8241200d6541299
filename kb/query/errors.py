"""The one error type of the query engine."""

from __future__ import annotations

from kb.errors import PaperkbError


class QueryError(PaperkbError):
    """A query that cannot be parsed or evaluated; the message is one line."""
