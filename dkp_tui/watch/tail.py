"""Incremental reader of a growing JSONL file (``metrics.jsonl``), for a dashboard that polls it.

A training process appends one line per write and may crash mid-line; a resumed run rewrites the file atomically
(a new inode) with the lines after its checkpoint dropped. So each poll reads only the bytes appended since the last
one, keeps an unterminated last line for the next poll, counts and skips lines that are not JSON objects, and
starts over from byte 0 when the file was replaced or truncated. The file is only ever opened read-only.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dkp_tui.formats.jsonl import parse_line

HEAD_BYTES = (
    64  # compared on every poll: a file rewritten in place with other content is detected by its head
)
MAX_READ = 16 * 2**20  # bytes read per poll at most, so one poll of a huge file never freezes the screen


@dataclass
class Batch:
    """What one poll found: new records, and whether everything read before must be forgotten first."""

    records: list[dict[str, Any]] = field(default_factory=list)
    reset: bool = False


class JsonlTailer:
    """Poll-driven tail of one JSONL file; never writes, never holds the file open between polls."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.offset = 0  # bytes consumed (complete lines plus the pending partial line)
        self.pending = b""  # an unterminated last line, parsed once its newline arrives
        self.corrupt = 0  # lines that were not a JSON object since the last reset
        self.lines = 0  # good lines since the last reset
        self.resets = 0  # how often the file was found replaced or truncated
        self._identity: tuple[int, int] | None = None
        self._head = b""

    def _restart(self) -> None:
        self.offset, self.pending, self.corrupt, self.lines, self._head = 0, b"", 0, 0, b""
        self.resets += 1

    def poll(self) -> Batch:
        """Read what was appended since the last poll. A missing file is not an error (the run may not have started)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return Batch()
        reset = False
        try:
            st = os.fstat(fd)
            identity = (st.st_dev, st.st_ino)
            if self._identity is not None and (identity != self._identity or st.st_size < self.offset):
                reset = True
            elif self._head and os.pread(fd, len(self._head), 0) != self._head:
                reset = True  # truncated and rewritten in place past our offset between two polls
            if reset:
                self._restart()
            self._identity = identity
            if len(self._head) < HEAD_BYTES and st.st_size > len(self._head):
                self._head = os.pread(fd, HEAD_BYTES, 0)
            if st.st_size <= self.offset:
                return Batch(reset=reset)
            data = os.pread(fd, min(st.st_size - self.offset, MAX_READ), self.offset)
        except OSError:  # e.g. a network file system hiccup: try again next poll
            return Batch(reset=reset)
        finally:
            os.close(fd)
        self.offset += len(data)
        return Batch(records=self._parse(data), reset=reset)

    def _parse(self, data: bytes) -> list[dict[str, Any]]:
        chunk = self.pending + data
        *complete, self.pending = chunk.split(b"\n")
        records: list[dict[str, Any]] = []
        for raw in complete:
            if not raw.strip():
                continue
            obj = parse_line(raw)  # the rule of every metrics reader (dkp_tui.formats.jsonl)
            if obj is not None:
                records.append(obj)
                self.lines += 1
            else:
                self.corrupt += 1
        return records
