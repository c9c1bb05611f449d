"""Atomic file writes: every file dkp produces appears whole or not at all (temp file in the same dir + rename)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from dkp_tui.errors import DkpError, errno_words


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_UMASK = _current_umask()


@contextmanager
def atomic_path(path: str | os.PathLike[str], suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it is renamed onto ``path``, on error removed.

    ``suffix`` keeps the extension for writers that infer the format from it (e.g. ``.npy``, ``.png``).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + (suffix or path.suffix), dir=path.parent)
        os.close(fd)
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the file the permissions open() would
    except OSError as err:  # a parent that is a file, a read-only or full disk: the user's to fix
        raise DkpError(f"cannot write {path}: {errno_words(err)}") from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_UMASK)  # again: a writer may have replaced the file (safetensors makes 0600)
        os.replace(tmp_path, path)
    except OSError as err:  # a disk that fills up (or vanishes) while the file is written: the old file stays
        words = _write_error_words(err, path.parent)
        tmp_path.unlink(missing_ok=True)
        kept = f"; the previous {path.name} was kept" if path.exists() else ""
        raise DkpError(f"cannot write {path}: {words}{kept}") from None
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def _write_error_words(err: OSError, folder: Path) -> str:
    """The errno's words; numpy reports a short write on a full disk without an errno ("N requested and M
    written"), so a full disk is named from the free space (measured before the partial file is removed)."""
    if err.errno is not None:
        return errno_words(err)
    try:
        full = shutil.disk_usage(folder).free < 2**16
    except OSError:
        full = False
    return f"No space left on device (ENOSPC): {err}" if full else str(err)


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent, sort_keys=False) + "\n")


def write_with(path: str | os.PathLike[str], writer: Callable[[Path], None], suffix: str = "") -> None:
    """Call ``writer(tmp_path)`` and rename the result onto ``path``."""
    with atomic_path(path, suffix=suffix) as tmp:
        writer(tmp)


def _inside_file(path: Path) -> Path | None:
    """The nearest existing ancestor of ``path`` when it is a file (``notes.txt`` for ``notes.txt/ds``)."""
    for parent in path.parents:
        if parent.exists():
            return None if parent.is_dir() else parent
    return None


def check_output_dir(path: str | os.PathLike[str], flag: str) -> None:
    """Refuse an output directory that is a file or lies inside one before any work is done: otherwise mkdir
    fails only at the end, after minutes of decoding or training, with a bare OSError."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise DkpError(f"{flag} {path} is a file; give a directory")
    parent = _inside_file(path)
    if parent is not None:
        raise DkpError(f"{flag} {path} lies inside the file {parent}; give a directory")


def check_output_file(path: str | os.PathLike[str], flag: str) -> None:
    """The same check for an output file: not a directory, and not inside a file."""
    path = Path(path)
    if path.is_dir():
        raise DkpError(f"{flag} {path} is a directory; give a file name")
    parent = _inside_file(path)
    if parent is not None:
        raise DkpError(f"{flag} {path} lies inside the file {parent}; give a path in a directory")
