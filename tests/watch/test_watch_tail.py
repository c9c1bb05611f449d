"""The incremental JSONL tailer: new bytes only, half lines, corrupt lines, truncated or replaced files."""

from __future__ import annotations

import json
import os
from pathlib import Path

from dkp_tui.watch.tail import JsonlTailer


def line(i: int) -> str:
    return json.dumps({"kind": "step", "step": i}) + "\n"


def append(path: Path, text: str | bytes) -> None:
    with open(path, "ab") as fh:
        fh.write(text.encode() if isinstance(text, str) else text)


def test_reads_only_new_lines(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    append(path, line(1) + line(2))
    t = JsonlTailer(path)
    assert [r["step"] for r in t.poll().records] == [1, 2]
    assert t.offset == path.stat().st_size
    assert t.poll().records == []
    append(path, line(3))
    batch = t.poll()
    assert [r["step"] for r in batch.records] == [3] and not batch.reset
    assert t.lines == 3 and t.corrupt == 0


def test_half_line_waits_for_its_newline(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    full = line(7)
    append(path, line(6) + full[:10])
    t = JsonlTailer(path)
    assert [r["step"] for r in t.poll().records] == [6]
    assert t.pending == full[:10].encode() and t.corrupt == 0
    append(path, full[10:-1])  # still no newline
    assert t.poll().records == [] and t.corrupt == 0
    append(path, "\n")
    assert [r["step"] for r in t.poll().records] == [7]
    assert t.pending == b"" and t.corrupt == 0


def test_corrupt_lines_are_counted_and_skipped(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    append(path, line(1) + "{not json\n" + "[1, 2]\n" + "\n")
    append(path, b"\xff\xfe{}\n")
    append(path, line(2))
    t = JsonlTailer(path)
    assert [r["step"] for r in t.poll().records] == [1, 2]
    assert t.corrupt == 3  # bad JSON, a list, bad UTF-8; the blank line is not counted


def test_truncated_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    append(path, line(1) + line(2) + line(3))
    t = JsonlTailer(path)
    t.poll()
    with open(path, "r+b") as fh:  # same inode, shorter
        fh.truncate(len(line(1)))
    batch = t.poll()
    assert batch.reset and [r["step"] for r in batch.records] == [1]
    assert t.resets == 1


def test_replaced_file_is_read_again(tmp_path: Path) -> None:
    """A resumed run rewrites metrics.jsonl atomically (new inode), possibly longer than before."""
    path = tmp_path / "m.jsonl"
    append(path, line(1))
    t = JsonlTailer(path)
    t.poll()
    tmp = tmp_path / "new.tmp"
    tmp.write_text(line(10) + line(11) + line(12))
    os.replace(tmp, path)
    batch = t.poll()
    assert batch.reset and [r["step"] for r in batch.records] == [10, 11, 12]


def test_rewritten_in_place_past_offset_is_detected(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    append(path, line(1))
    t = JsonlTailer(path)
    t.poll()
    with open(path, "r+b") as fh:  # same inode, other content, now longer than our offset
        fh.write((line(5) + line(6)).encode())
    batch = t.poll()
    assert batch.reset and [r["step"] for r in batch.records] == [5, 6]


def test_missing_file_then_created(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    t = JsonlTailer(path)
    assert t.poll().records == []
    append(path, line(1))
    assert [r["step"] for r in t.poll().records] == [1]


def test_tailer_never_writes(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    append(path, line(1) + "{bad\n" + line(2)[:5])
    before = (path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(tmp_path)))
    t = JsonlTailer(path)
    for _ in range(3):
        t.poll()
    assert (path.read_bytes(), path.stat().st_mtime_ns, sorted(os.listdir(tmp_path))) == before
