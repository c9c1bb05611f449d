"""The restricted reader of the Taichi ground-truth pickles: real DataFrame pickles read, payloads refused unrun."""

from __future__ import annotations

import json
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd  # the [dev] extra installs it; dkp itself never imports it
import pytest

from dkp_tui.data.safe_pickle import (
    ALLOWED_GLOBALS,
    KNOWN_SHA256,
    convert_taichi_gt,
    read_taichi_gt,
    read_taichi_gt_json,
)
from dkp_tui.errors import DkpError


def _gt_values(n: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    values = [rng.integers(0, 256, size=(18, 2)).astype(np.float64) for _ in range(n)]
    values[0][0] = (10.0, 200.0)  # (x, y)
    values[0][3] = (-1.0, -1.0)  # missing
    values[-1][17] = (-1.0, -1.0)
    return values


def _dataframe(names: list[str], values: list[np.ndarray]) -> pd.DataFrame:
    """The published frame's shape: file_name, frame_number (0) and an object column of 18 x 2 arrays."""
    return pd.DataFrame({"file_name": pd.Series(names, dtype=object), "frame_number": [0] * len(names),
                         "value": pd.Series(values, dtype=object)})


@pytest.mark.parametrize("protocol", [4, 5])
def test_reads_a_real_dataframe_pickle(tmp_path: Path, protocol: int) -> None:
    names = [f"{i:05d}.png" for i in range(6)]
    values = _gt_values(6)
    path = tmp_path / "taichi_train_gt.pkl"
    path.write_bytes(pickle.dumps(_dataframe(names, values), protocol=protocol))
    gt = read_taichi_gt(path)
    assert gt.file_names == names
    assert gt.frame_numbers == [0] * 6
    np.testing.assert_array_equal(gt.keypoints_xy, np.stack(values))
    assert gt.missing_values == 4
    # dkp order is (y, x): the source's x=10, y=200 is stored as (200, 10); a missing joint keeps -1, invisible
    assert tuple(gt.keypoints_yx()[0, 0]) == (200.0, 10.0)
    assert not gt.visible()[0, 3] and gt.visible()[0, 0]
    assert any("not one of the published" in w for w in gt.warnings)  # unknown SHA-256: read, with a warning


def test_reads_the_pandas_default_string_columns_and_to_pickle(tmp_path: Path) -> None:
    names = ["a.png", "b.png"]
    values = _gt_values(2, seed=1)
    df = pd.DataFrame({"file_name": names, "frame_number": [0, 0], "value": values})
    path = tmp_path / "gt.pkl"
    df.to_pickle(path)
    gt = read_taichi_gt(path)
    assert gt.file_names == names
    np.testing.assert_array_equal(gt.keypoints_xy, np.stack(values))


# -- the published generation, written opcode by opcode (no old pandas needed) ------------------------------------


def _s(text: str) -> bytes:
    raw = text.encode()
    return b"\x8c" + bytes([len(raw)]) + raw


def _g(module: str, name: str) -> bytes:
    return _s(module) + _s(name) + b"\x93"


def _int(v: int) -> bytes:
    return b"J" + struct.pack("<i", v)


def _obj(v: object) -> bytes:
    if v is None:
        return b"N"
    if isinstance(v, bool):
        return b"\x88" if v else b"\x89"
    if isinstance(v, int):
        return _int(v)
    if isinstance(v, str):
        return _s(v)
    if isinstance(v, bytes):
        return b"B" + struct.pack("<I", len(v)) + v
    if isinstance(v, tuple):
        return b"(" + b"".join(_obj(x) for x in v) + b"t"
    if isinstance(v, list):
        return b"](" + b"".join(_obj(x) for x in v) + b"e"
    if isinstance(v, dict):
        return b"}(" + b"".join(_obj(k) + _obj(x) for k, x in v.items()) + b"u"
    if isinstance(v, _Raw):
        return v.data
    raise TypeError(type(v))


class _Raw:
    def __init__(self, data: bytes) -> None:
        self.data = data


def _dtype(code: str, order: str, flags: int) -> _Raw:
    return _Raw(_g("numpy", "dtype") + _obj((code, False, True)) + b"R"
                + _obj((3, order, None, None, None, -1, -1, flags)) + b"b")


def _array(shape: tuple[int, ...], dtype: _Raw, data: object) -> _Raw:
    head = _g("numpy.core.multiarray", "_reconstruct") + _obj((_Raw(_g("numpy", "ndarray")), (0,), b"b")) + b"R"
    return _Raw(head + _obj((1, shape, dtype, False, data)) + b"b")


def _legacy_pickle(names: list[str], values: list[np.ndarray]) -> bytes:
    """A DataFrame as pandas 0.2x pickled it (protocol 4, '0.14.1' block state), with exactly the published globals."""
    n = len(names)
    f8, i8, o8 = _dtype("f8", "<", 0), _dtype("i8", "<", 0), _dtype("O8", "|", 63)
    index = _g("pandas.core.indexes.base", "_new_Index")
    columns = _Raw(index + _obj((_Raw(_g("pandas.core.indexes.base", "Index")),
                                 {"data": _array((3,), o8, ["file_name", "frame_number", "value"]), "name": None}))
                   + b"R")
    rows = _Raw(index + _obj((_Raw(_g("pandas.core.indexes.range", "RangeIndex")),
                              {"name": None, "start": 0, "step": 1, "stop": n})) + b"R")
    objects = _array((2, n), o8, list(names) + [_array((18, 2), f8, v.astype("<f8").tobytes()) for v in values])
    ints = _array((1, n), i8, np.zeros(n, dtype="<i8").tobytes())
    blocks = [{"mgr_locs": _Raw(_g("builtins", "slice") + _obj((1, 2, 1)) + b"R"), "values": ints},
              {"mgr_locs": _Raw(_g("builtins", "slice") + _obj((0, 3, 2)) + b"R"), "values": objects}]
    manager = _Raw(_g("pandas.core.internals", "BlockManager") + b")\x81"
                   + _obj(([columns, rows], [], [], {"0.14.1": {"axes": [columns, rows], "blocks": blocks}})) + b"b")
    frame = _g("pandas.core.frame", "DataFrame") + b")\x81" + _obj(
        {"_data": manager, "_typ": "dataframe", "_metadata": []}) + b"b"
    return b"\x80\x04" + frame + b"."


def test_reads_the_published_pickle_generation(tmp_path: Path) -> None:
    names = ["00164.png", "00005.png", "00063.png"]
    values = _gt_values(3, seed=2)
    path = tmp_path / "taichi_test_gt.pkl"
    path.write_bytes(_legacy_pickle(names, values))
    gt = read_taichi_gt(path)
    assert gt.file_names == names
    np.testing.assert_array_equal(gt.keypoints_xy, np.stack(values))
    # and without importing pandas (this test module imports it, so look from a fresh interpreter)
    code = ("import sys; from dkp_tui.data.safe_pickle import read_taichi_gt; "
            f"assert len(read_taichi_gt({str(path)!r})) == 3; assert 'pandas' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_only_the_documented_globals_are_allowed() -> None:
    published = {"pandas.core.frame.DataFrame", "pandas.core.internals.BlockManager",
                 "pandas.core.indexes.base._new_Index", "pandas.core.indexes.base.Index",
                 "pandas.core.indexes.range.RangeIndex", "numpy.core.multiarray._reconstruct", "numpy.ndarray",
                 "numpy.dtype", "builtins.slice"}
    assert published <= ALLOWED_GLOBALS
    assert not any(g.startswith(("os.", "posix.", "subprocess.", "builtins.eval", "builtins.exec")) for g in ALLOWED_GLOBALS)
    assert len(KNOWN_SHA256) == 2


# -- payloads ------------------------------------------------------------------------------------------------------


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return os.system, (f"touch {self.marker}",)


def test_a_pickle_with_a_payload_is_refused_and_never_run(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pkl"
    path.write_bytes(pickle.dumps(_Payload(marker), protocol=4))
    with pytest.raises(DkpError, match=r"refusing to load.*(posix|os)\.system") as info:
        read_taichi_gt(path)
    assert "\n" not in str(info.value)
    assert not marker.exists()
    # the unrestricted unpickler really would have run it: the refusal is what protects
    pickle.loads(path.read_bytes())
    assert marker.exists()


def test_a_payload_hidden_inside_a_real_dataframe_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    values: list[object] = list(_gt_values(2))
    values[1] = _Payload(marker)
    path = tmp_path / "taichi_train_gt.pkl"
    path.write_bytes(pickle.dumps(_dataframe(["a.png", "b.png"], values), protocol=4))  # type: ignore[arg-type]
    with pytest.raises(DkpError, match="refusing to load"):
        read_taichi_gt(path)
    assert not marker.exists()


def test_builtins_other_than_slice_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "eval.pkl"
    path.write_bytes(b"\x80\x04" + _g("builtins", "eval") + _obj(("1+1",)) + b"R.")
    with pytest.raises(DkpError, match="builtins.eval"):
        read_taichi_gt(path)


# -- validation and JSON ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("bad", "message"), [
    (np.full((17, 2), 5.0), "expected 18x2"),
    (np.full((18, 2), 300.0), "neither -1 nor in 0-255"),
    (np.full((18, 2), np.nan), "neither -1 nor in 0-255"),
])
def test_wrong_shapes_and_values_are_refused(tmp_path: Path, bad: np.ndarray, message: str) -> None:
    values = _gt_values(2)
    values[1] = bad
    path = tmp_path / "gt.pkl"
    path.write_bytes(pickle.dumps(_dataframe(["a.png", "b.png"], values), protocol=4))
    with pytest.raises(DkpError, match=message):
        read_taichi_gt(path)


def test_json_round_trip_and_a_json_copy_is_accepted(tmp_path: Path) -> None:
    names = ["a.png", "b.png", "c.png"]
    values = _gt_values(3)
    src = tmp_path / "gt.pkl"
    src.write_bytes(pickle.dumps(_dataframe(names, values), protocol=4))
    dst = tmp_path / "gt.json"
    gt = convert_taichi_gt(src, dst)
    data = json.loads(dst.read_text())
    assert set(data["frames"][0]) == {"file_name", "frame_number", "keypoints_xy"}
    assert data["frames"][0]["keypoints_xy"][0] == [10.0, 200.0]
    back = read_taichi_gt_json(dst)
    assert back.file_names == gt.file_names
    np.testing.assert_array_equal(back.keypoints_xy, gt.keypoints_xy)
    bare = tmp_path / "bare.json"  # the bare list of frames is accepted too
    bare.write_text(json.dumps(data["frames"]))
    assert read_taichi_gt(bare).missing_values == gt.missing_values
