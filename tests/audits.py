"""One full audit per real tree per test session, shared by every test that reads audit documents.

`audited(series)` copies the cached index of the audit's own scope (`kernel_trees.indexed_db`: generic code and
the arch/ directories of the arches with frame rules, the index `regaudit audit` makes) into a temporary directory,
audits every arch with frame rules, and returns (database, document). The copy keeps the shared index free of
audit tables; the cache keeps the session from auditing a tree twice (about a minute each).
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import Any

from kernel_trees import index_copy, kernel_tree

from regaudit.arch.catalogue import modelled_arches
from regaudit.audit.run import audit_database


@cache
def _scratch() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="regaudit-audits-"))
    atexit.register(shutil.rmtree, directory, ignore_errors=True)
    return directory


@cache
def audited(series: str) -> tuple[Path, dict[str, Any]]:
    db = _scratch() / f"linux-{series}.db"
    index_copy(series, db, tuple(modelled_arches(kernel_tree(series))))
    return db, audit_database(db, kernel_tree(series))
