"""The error hierarchy the library raises and the CLI maps to one-line messages and exit codes.

Library code raises these; only `cli.py` turns them into output. Nothing here prints.
"""


class RegauditError(Exception):
    """Base of every error the CLI reports as one line. `exit_code` is the process status."""

    exit_code = 2


class BadInput(RegauditError):
    """The user gave something unusable: not a kernel tree, a malformed patch, a broken database."""


class RuleDataError(RegauditError):
    """A file under rules/ is malformed or violates its schema."""


class InternalError(RegauditError):
    """A bug in regaudit itself (exit 3); `--debug` shows the traceback."""

    exit_code = 3
