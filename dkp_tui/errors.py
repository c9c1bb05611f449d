"""The one user-facing error type: the CLI turns it into a single line on stderr and exit code 2."""

from __future__ import annotations


class DkpError(Exception):
    """A problem the user can fix (bad input, missing weights, wrong shapes).

    Raised anywhere in the package; `dkp_tui.cli` prints ``str(err)`` as one line and exits with ``exit_code``.
    Never raise it for programming errors: those should keep their traceback.
    """

    def __init__(self, message: str, exit_code: int = 2) -> None:
        super().__init__(" ".join(message.split()))
        self.exit_code = exit_code
