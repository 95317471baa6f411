"""`regaudit` started as a terminal starts a foreground job, for the tests that interrupt it: in a process group of
its own, which a test signals as a whole (`os.killpg`, as a terminal's Ctrl-C does), and with SIGINT at its default
disposition even where the test runner ignores it (a shell starts its background jobs so)."""

from __future__ import annotations

import signal
import subprocess
import sys


def started(*args: str) -> subprocess.Popen[str]:
    """`python -m regaudit ARGS`, its standard output discarded and its standard error kept."""
    return subprocess.Popen([sys.executable, "-m", "regaudit", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, start_new_session=True, preexec_fn=_default_interrupts)


def _default_interrupts() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)
