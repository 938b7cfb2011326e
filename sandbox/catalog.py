"""The mock SaaS catalogue: which providers expose which objects, and their fake rows.

Rows are a pure function of (tenant, object, id), so every process (provider, tests)
agrees on them without storing anything, and each tenant sees different data.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from labcore.workload import CATALOG_ROWS

__all__ = ["CATALOG", "ObjectSpec", "lookup", "make_row"]

Row = dict[str, Any]

_WORDS = ("Apex", "Blue", "Cobalt", "Delta", "Ember", "Falcon", "Granite", "Harbor", "Iris", "Juno")
_INDUSTRIES = ("software", "retail", "health", "finance", "energy")
_REGIONS = ("emea", "amer", "apac")
_STATUSES = ("open", "pending", "solved", "closed")
_PRIORITIES = ("low", "normal", "high", "urgent")


def _pick(seed: str, options: tuple[str, ...]) -> str:
    # crc32, not hash(): hash() is salted per process and the rows must agree everywhere.
    return options[zlib.crc32(seed.encode()) % len(options)]


def _date(seed: str) -> str:
    day = zlib.crc32(seed.encode()) % 365
    return f"2025-{1 + day // 31 % 12:02d}-{1 + day % 28:02d}"


def _account(tenant: str, i: int) -> Row:
    s = f"{tenant}:accounts:{i}"
    return {
        "id": i,
        "name": f"{_pick(s + 'n', _WORDS)} {_pick(s + 'm', _WORDS)} {i}",
        "industry": _pick(s + "i", _INDUSTRIES),
        "region": _pick(s + "r", _REGIONS),
        "owner": f"rep{zlib.crc32((s + 'o').encode()) % 20}",
        "created_at": _date(s),
    }


def _contact(tenant: str, i: int) -> Row:
    s = f"{tenant}:contacts:{i}"
    name = f"{_pick(s + 'f', _WORDS)} {_pick(s + 'l', _WORDS)}"
    return {
        "id": i,
        "account_id": 1 + zlib.crc32(s.encode()) % CATALOG_ROWS["crm.accounts"],
        "name": name,
        "email": f"contact{i}@{tenant}.example",
        "title": _pick(s + "t", ("cto", "buyer", "engineer", "analyst")),
    }


def _ticket(tenant: str, i: int) -> Row:
    s = f"{tenant}:tickets:{i}"
    return {
        "id": i,
        "account_id": 1 + zlib.crc32(s.encode()) % CATALOG_ROWS["crm.accounts"],
        "subject": f"{_pick(s + 's', _WORDS)} issue {i}",
        "status": _pick(s + "st", _STATUSES),
        "priority": _pick(s + "p", _PRIORITIES),
        "created_at": _date(s),
    }


@dataclass(frozen=True)
class ObjectSpec:
    """One object of one provider: its columns, row count and row generator."""

    provider: str
    name: str
    columns: tuple[str, ...]
    count: int
    make: Callable[[str, int], Row]


CATALOG: dict[str, dict[str, ObjectSpec]] = {
    "crm": {
        "accounts": ObjectSpec(
            "crm", "accounts", ("id", "name", "industry", "region", "owner", "created_at"),
            CATALOG_ROWS["crm.accounts"], _account,
        ),
        "contacts": ObjectSpec(
            "crm", "contacts", ("id", "account_id", "name", "email", "title"),
            CATALOG_ROWS["crm.contacts"], _contact,
        ),
    },
    "tickets": {
        "tickets": ObjectSpec(
            "tickets", "tickets",
            ("id", "account_id", "subject", "status", "priority", "created_at"),
            CATALOG_ROWS["tickets.tickets"], _ticket,
        ),
    },
}


def lookup(provider: str, obj: str) -> ObjectSpec | None:
    return CATALOG.get(provider, {}).get(obj)


def make_row(spec: ObjectSpec, tenant: str, i: int) -> Row:
    return spec.make(tenant, i)
