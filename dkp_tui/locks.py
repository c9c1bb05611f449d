"""One writer per run, data set and depth cache: an OS lock on ``<folder>/.dkp.lock``, held for the writer's life.

``fcntl.flock`` is released by the kernel when the process dies, however it dies, so a ``kill -9`` never leaves a
stale lock; the file's text (pid and command line) only serves to say who holds it. Readers (eval, infer, watch,
export) take no lock. Under torchrun only rank 0 locks: the other ranks write only what rank 0 coordinates.

On network file systems flock may be emulated per host or ignored (NFS before v4, some FUSE mounts): two writers
on different machines can then both get the lock; see docs/faults.md.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from dkp_tui.errors import DkpError, errno_words

LOCK_NAME = ".dkp.lock"
# the temporary names of dkp_tui.atomic (``.NAME.XXXXXXXX.tmp[.ext]``) and tempfile.mkdtemp (``.NAME.XXXXXXXX.tmp``)
_TEMP = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp(\.[^/]*)?$")


def is_main_rank() -> bool:
    """Rank 0 of a torchrun job, or a plain process (torchrun sets RANK in every rank's environment)."""
    return os.environ.get("RANK", "0") in ("", "0")


def _holder(path: Path) -> str:
    """Who holds the lock, from its file; the holder writes it just after locking, so retry briefly while empty."""
    for _ in range(20):
        try:
            text = path.read_text(encoding="utf-8", errors="replace").strip()
        except OSError:
            text = ""
        if text:
            pid, _, cmd = text.partition(" ")
            return f"pid {pid} ({cmd})" if cmd else f"pid {pid}"
        time.sleep(0.02)
    return "another process"


def _command_line() -> str:
    args = [Path(sys.argv[0]).name if sys.argv else "python", *sys.argv[1:]]
    if args and args[0] in ("__main__.py", "-m", "-c"):
        args[0] = "dkp"
    return " ".join(args)[:500]


def _open_locked(path: Path, what: str) -> int:
    """An fd on ``path`` holding its exclusive lock. The inode is checked after locking: a releasing writer
    unlinks the file while it still holds it, and a lock on an unlinked file excludes nobody."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            os.close(fd)
            if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise DkpError(f"{what} is being written by {_holder(path)}; wait for it to finish or stop it "
                               f"(lock {path})") from None
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def remove_dead_temps(folder: Path, keep: frozenset[str] = frozenset(), max_depth: int = 3) -> list[Path]:
    """Temporary files (and folders) a killed writer of ``folder`` left behind; call only while holding its lock,
    and only on a folder known to be dkp's (a run, a data set that passed its checks, a depth cache): the pattern
    is dkp's, but another program could use it too.

    ``keep``: target names that a reader may be writing at the same time (``eval.json`` in a run), left alone.
    ``max_depth``: folder levels below ``folder`` looked at (a run's ``checkpoint/``, a cache's ``<tag>/<split>/``).
    """
    removed: list[Path] = []
    top = len(folder.parts)
    for root, dirs, files in os.walk(folder):
        if len(Path(root).parts) - top >= max_depth:
            dirs[:] = []
        for name in [*files, *dirs]:
            m = _TEMP.match(name)
            if m is None or m.group("target") in keep:
                continue
            p = Path(root) / name
            with contextlib.suppress(OSError):
                if p.is_dir() and not p.is_symlink():
                    shutil.rmtree(p)
                else:
                    p.unlink()
                removed.append(p)
        dirs[:] = [d for d in dirs if not _TEMP.match(d)]
    return removed


@contextlib.contextmanager
def writer_lock(folder: str | os.PathLike[str], what: str, keep: frozenset[str] = frozenset(),
                clean: bool = True) -> Iterator[None]:
    """Hold ``folder``'s writer lock (creating the folder) for the body; a second writer gets a DkpError at once.

    ``clean``: first remove what a killed writer left (``remove_dead_temps``); pass False where the folder's
    contents are checked only under the lock (``prepare --out``), and call it once they are. On the way out the
    lock file is removed, and so is the folder when this call created it and nothing else was written there (a
    refused input leaves nothing behind). Not rank 0 of torchrun: no lock, nothing else.
    """
    folder = Path(folder)
    if not is_main_rank():
        yield
        return
    created = not folder.exists()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DkpError(f"cannot create {folder}: {errno_words(err)}") from None
    path = folder / LOCK_NAME
    try:
        fd = _open_locked(path, what)
    except OSError as err:
        if err.errno == errno.ENOLCK:
            raise DkpError(f"{folder}: the file system does not support locks (flock: {err.strerror}); "
                           "use a local disk for runs and data sets") from None
        raise
    try:
        with contextlib.suppress(OSError):  # who holds it, for the second writer's message; best effort
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()} {_command_line()}\n".encode(), 0)
        if clean:
            remove_dead_temps(folder, keep)
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still locked: see _open_locked
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty
