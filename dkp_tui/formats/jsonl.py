"""Tolerant reading of append-only JSONL logs (``metrics.jsonl``): the one rule every reader follows.

A process killed mid-write, or a disk block torn by a crash, can leave a partial last line or bytes that are not
UTF-8. Such a line is dropped and counted, never fatal: resume (which rewrites the log up to its checkpoint), the
dashboard's tailer and ``dkp export-metrics`` all read through ``parse_line``.
"""

from __future__ import annotations

import json
import os
from typing import Any


def parse_line(raw: bytes) -> dict[str, Any] | None:
    """One line as a JSON object, or None when it is not one (torn, not UTF-8, not JSON, not an object)."""
    try:
        obj = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return obj if isinstance(obj, dict) else None


def parse_lines(data: bytes) -> tuple[list[dict[str, Any]], int]:
    """The JSON objects of ``data`` (every line, including an unterminated last one) and how many lines were
    dropped; blank lines are neither."""
    records: list[dict[str, Any]] = []
    dropped = 0
    for raw in data.split(b"\n"):
        if not raw.strip():
            continue
        obj = parse_line(raw)
        if obj is None:
            dropped += 1
        else:
            records.append(obj)
    return records, dropped


def read_jsonl(path: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], int]:
    """``parse_lines`` of a whole file (OSError propagates: a missing log is the caller's to word)."""
    with open(path, "rb") as fh:
        return parse_lines(fh.read())
