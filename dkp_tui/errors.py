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



def errno_words(err: OSError) -> str:
    """The errno's words and name: ``No space left on device (ENOSPC)``."""
    import errno

    words = err.strerror or str(err) or type(err).__name__
    return f"{words} ({errno.errorcode[err.errno]})" if err.errno in errno.errorcode else words


def os_error_text(err: OSError) -> str:
    """One line for an OSError the user has to fix: the path(s) and the errno's words, e.g.
    ``runs/a/run.json: No space left on device (ENOSPC)``."""
    where = " -> ".join(str(f) for f in (err.filename, err.filename2) if f is not None)
    return f"{where}: {errno_words(err)}" if where else errno_words(err)
