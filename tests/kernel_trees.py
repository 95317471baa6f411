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
def indexed_db(series: str) -> Path:
    """A fact database of the real linux-`series` tree, built by `regaudit index` and kept between
    test sessions under $REGAUDIT_TEST_DBS (default ~/.cache/regaudit/test-dbs): the index is
    incremental, so a re-run only checks that nothing changed."""
    from regaudit.index import index_tree

    cache_dir = Path(os.environ.get("REGAUDIT_TEST_DBS", Path.home() / ".cache" / "regaudit" / "test-dbs"))
    db = cache_dir / f"linux-{series}.db"
    index_tree(kernel_tree(series), db)
    return db


def private_db(series: str, factory: pytest.TempPathFactory) -> Path:
    """A copy of `indexed_db(series)` for one test module: the cached index is shared with other modules, which
    must not see the edges or audits it gets."""
    copy = factory.mktemp(f"linux-{series}") / f"linux-{series}.db"
    shutil.copyfile(indexed_db(series), copy)
    return copy
