"""Real kernel trees for end-to-end tests, obtained through the shared fetch script CI also runs.

`kernel_tree("7.3")` returns the unpacked tree; it is cached for the test session and the script is
idempotent. A missing script or a failed fetch fails the test instead of skipping it: these tests are
the project's check against real kernels, and a silent skip would hide that they never ran.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from functools import cache
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FETCH_SCRIPT = REPO_ROOT.parent / "shared" / "kernels" / "fetch"
SERIES = ("6.1", "6.12", "7.3")


@cache
def kernel_tree(series: str) -> Path:
    """The root of the real linux-`series` tree, fetched on first use."""
    if not FETCH_SCRIPT.is_file():
        pytest.fail(
            f"kernel fetch script {FETCH_SCRIPT} is missing: the checkout needs ../shared/kernels/fetch beside it",
            pytrace=False,
        )
    result = subprocess.run(["bash", str(FETCH_SCRIPT), series], capture_output=True, text=True, check=False)
    printed = result.stdout.strip().splitlines()
    if result.returncode != 0 or not printed:
        pytest.fail(f"{FETCH_SCRIPT} {series} failed ({result.returncode}): {result.stderr.strip()}", pytrace=False)
    tree = Path(printed[-1])
    if not (tree / "Makefile").is_file():
        pytest.fail(f"{FETCH_SCRIPT} {series} printed {tree}, which is not a kernel tree", pytrace=False)
    return tree


@cache
def indexed_db(series: str, arches: tuple[str, ...] | None = None) -> Path:
    """A fact database of the real linux-`series` tree, built by `regaudit index` (of every arch, or of the scope
    `arches`) and kept between test sessions under $REGAUDIT_TEST_DBS (default ~/.cache/regaudit/test-dbs): the
    index is incremental, so a re-run only checks that nothing changed."""
    from regaudit.index import index_tree

    cache_dir = Path(os.environ.get("REGAUDIT_TEST_DBS", Path.home() / ".cache" / "regaudit" / "test-dbs"))
    db = cache_dir / (f"linux-{series}.db" if arches is None else f"linux-{series}.{'-'.join(arches)}.db")
    index_tree(kernel_tree(series), db, arches=arches)
    return db


def index_copy(series: str, target: Path, arches: tuple[str, ...] | None = None) -> Path:
    """`target`, a copy of `indexed_db(series, arches)` with the index's facts only, for a test to link, audit or
    check: the cached index is shared with other tests, which must not see the edges or audits a test makes, and
    whatever linked or audited the cached database (a `regaudit check --db` on it) must not decide what a test
    starts from."""
    from regaudit.facts.store import FactStore

    shutil.copyfile(indexed_db(series, arches), target)
    with FactStore(target) as store:
        store.invalidate_derived()
    return target


def private_db(series: str, factory: pytest.TempPathFactory) -> Path:
    """`index_copy` in a directory of its own, for one test module."""
    return index_copy(series, factory.mktemp(f"linux-{series}") / f"linux-{series}.db")
