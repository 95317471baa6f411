"""Writing a report file so that no reader ever sees half of it, and a failure never clobbers the old one."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from regaudit.errors import BadInput


def write_atomically(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file renamed over it. BadInput when the place is unwritable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False,
                                         encoding="utf-8") as handle:
            handle.write(text)
        os.replace(handle.name, path)
    except OSError as error:
        raise BadInput(f"{path}: cannot write: {error.strerror}") from None
