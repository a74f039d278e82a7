"""The errors pdeinv raises for a user's mistake, and how the command line reports them.

Library code raises these (or plain ``ValueError`` / ``FileNotFoundError``) with a message that
names what was wrong and what to do; ``pdeinv``'s command line prints that message on one line
and exits with :attr:`PdeinvError.exit_code` (2 for usage, 1 for a failed run), with no
traceback unless ``--debug`` is given.
"""

from __future__ import annotations


class PdeinvError(Exception):
    """A run failed for a reason the user can act on (exit code 1)."""

    exit_code = 1


class UsageError(PdeinvError, ValueError):
    """A command or function was called with an invalid argument (exit code 2)."""

    exit_code = 2


class NonFiniteError(PdeinvError, ValueError):
    """A NaN or infinite value was found where the work cannot go on (exit code 1)."""


class OutputExistsError(PdeinvError, FileExistsError):
    """An output file exists and would be overwritten (exit code 2: pass ``--overwrite`` or another path)."""

    exit_code = 2
