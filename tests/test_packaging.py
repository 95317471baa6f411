"""The wheel carries the data directories (queries/, rules/, reports/) that live at the top of the
checkout, so an installed regaudit finds them without the source tree."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_queries_rules_and_reports(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp_path), str(REPO)], check=True)
    (wheel,) = tmp_path.glob("regaudit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in ("queries/definitions.scm", "queries/expressions.scm", "rules/c_dialect.toml",
                 "rules/prefilter.toml", "rules/prefilter_hints.txt", "rules/frames/x86.toml", "reports/README.md"):
        assert f"regaudit/_data/{data}" in names, f"{data} missing from {wheel.name}"
