"""The SQL subset OmniSQL's engine accepts, parsed into a value object.

`SELECT cols|* FROM connector.object [WHERE col = value] [LIMIT n]` with an optional `;`.
A regular grammar, so one anchored regex is enough and cannot backtrack badly.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from sandbox.catalog import CATALOG, lookup
from sandbox.errors import ApiError

__all__ = ["DEFAULT_LIMIT", "MAX_LIMIT", "Query", "connector_of", "parse"]

MAX_LIMIT = 1000
MAX_INT_DIGITS = 18  # a PostgreSQL bigint; Python refuses int() of very long literals
DEFAULT_LIMIT = 100
_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_PATTERN = re.compile(
    rf"""^\s*SELECT\s+(?P<cols>\*|{_IDENT}(?:\s*,\s*{_IDENT})*)
    \s+FROM\s+(?P<conn>{_IDENT})\.(?P<obj>{_IDENT})
    (?:\s+WHERE\s+(?P<wcol>{_IDENT})\s*=\s*(?P<wval>-?\d+|'(?:[^'\\]|'')*'))?
    (?:\s+LIMIT\s+(?P<limit>\d+))?
    \s*;?\s*$""",
    re.IGNORECASE | re.VERBOSE,
)


@dataclass(frozen=True)
class Query:
    """A parsed, catalogue-checked query."""

    columns: tuple[str, ...]
    connector: str
    obj: str
    where: tuple[str, Any] | None
    limit: int

    def fingerprint(self) -> str:
        """A stable digest of the query's meaning (cache key part; not the raw text)."""
        canon = json.dumps([self.columns, self.connector, self.obj, self.where, self.limit])
        return hashlib.sha256(canon.encode()).hexdigest()[:32]

    def to_json(self) -> dict[str, Any]:
        return {
            "columns": list(self.columns),
            "connector": self.connector,
            "object": self.obj,
            "where": list(self.where) if self.where else None,
            "limit": self.limit,
        }


def _int(text: str, what: str) -> int:
    # Python refuses int() of > 4300 digits with a ValueError: check the length first.
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise ApiError(400, "BAD_SQL", f"{what} has more than {MAX_INT_DIGITS} digits")
    return int(text)


def _value(text: str) -> Any:
    if text.startswith("'"):
        return text[1:-1].replace("''", "'")
    return _int(text, "an integer literal")


def _limit(text: str | None) -> int:
    if text is None:
        return DEFAULT_LIMIT
    n = _int(text, "LIMIT")
    if not 1 <= n <= MAX_LIMIT:
        raise ApiError(400, "BAD_SQL", f"LIMIT must be between 1 and {MAX_LIMIT}")
    return n


def parse(sql: str) -> Query:
    """Parse and check against the catalogue; ApiError 400/404 otherwise."""
    m = _PATTERN.match(sql)
    if m is None:
        raise ApiError(
            400, "BAD_SQL",
            "expected: SELECT cols FROM connector.object [WHERE col = value] [LIMIT n]",
        )
    conn, obj = m["conn"].lower(), m["obj"].lower()
    spec = lookup(conn, obj)
    if spec is None:
        raise ApiError(404, "NOT_FOUND", f"unknown connector object {conn}.{obj}")
    cols = (spec.columns if m["cols"] == "*"
            else tuple(c.strip().lower() for c in m["cols"].split(",")))
    where = (m["wcol"].lower(), _value(m["wval"])) if m["wcol"] else None
    for col in cols + ((where[0],) if where else ()):
        if col not in spec.columns:
            raise ApiError(400, "BAD_SQL", f"unknown column {col} in {conn}.{obj}")
    return Query(cols, conn, obj, where, _limit(m["limit"]))


_FROM = re.compile(r"\bFROM\s+([A-Za-z_][A-Za-z0-9_]*)\.", re.IGNORECASE)


def connector_of(sql: object) -> str:
    """The query's connector for metric labels: a known name or "" (bounded label values)."""
    m = _FROM.search(sql) if isinstance(sql, str) else None
    name = m[1].lower() if m else ""
    return name if name in CATALOG else ""
