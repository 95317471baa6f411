"""The rows a query returns from a database file, for tests that look into the fact database directly."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path


def rows(db: Path, sql: str, *args: object) -> list[tuple]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, args).fetchall()
