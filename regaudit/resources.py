"""Locates the data directories (queries/, rules/, reports/) in a wheel or in a checkout.

In a wheel they are shipped under `regaudit/_data/` (see pyproject's force-include); in a checkout or
an editable install they sit at the repository's top level. Nothing else in the package hard-codes
these paths.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

_PACKAGE_DIR = Path(__file__).resolve().parent


@cache
def data_dir(name: str) -> Path:
    """Return the directory `name` (queries, rules or reports), packaged copy first."""
    for candidate in (_PACKAGE_DIR / "_data" / name, _PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"regaudit data directory {name!r} is missing from this installation")


@cache
def code_hash() -> str:
    """A short hash of the package's Python sources: an audit made by other code (a newer checkout under the
    same version number) is not reused."""
    return _files_hash([(_PACKAGE_DIR, sorted(_PACKAGE_DIR.rglob("*.py")))])


def content_hash(*dirs: str) -> str:
    """A short hash of every file below the named data directories: changes when any rule or query does."""
    roots = [data_dir(name) for name in dirs]
    return _files_hash([(root, sorted(p for p in root.rglob("*") if p.is_file())) for root in roots])


def _files_hash(groups: list[tuple[Path, list[Path]]]) -> str:
    """16 hex digits over each file's path (relative to its group's root) and content."""
    digest = hashlib.sha256()
    for root, paths in groups:
        for path in paths:
            digest.update(str(path.relative_to(root)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]
