"""Read the Taichi ground-truth pickles without ever running code from them.

Unpickling calls whatever callables a file names, so ``pickle.load`` / ``pandas.read_pickle`` on a file a user
downloaded is arbitrary code execution. The published files are pandas DataFrames; this reader is a restricted
unpickler that maps exactly the globals such a DataFrame needs to *inert stand-ins* (they only record the
arguments and state the pickle hands them; pandas is never imported), refuses every other global with an error
naming it, and then rebuilds the three columns from the recorded data: numeric arrays from their recorded
shape, dtype and bytes, object arrays from their recorded element lists.

Allowed globals: the nine the published files use (datasets.md), plus the names a current pandas/numpy writes
for the same objects (``pandas.DataFrame``, ``pandas.core.internals.managers.BlockManager``,
``pandas._libs.internals._unpickle_block``, ``numpy._core.multiarray._reconstruct``, and the string-array pieces
of a pandas 3 column index), so that a DataFrame re-saved by a user also reads.

The result is checked (N x 18 x 2, values -1 or 0-255, unique file names) and can be written once as JSON
(``{file_name, frame_number, keypoints_xy}`` per frame); evaluation reads only converted data.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from dkp_tui.atomic import write_json
from dkp_tui.errors import DkpError

N_JOINTS = 18
MISSING = -1.0
MAX_PICKLE_BYTES = 256 * 1024 * 1024  # the published train file is 1.7 MB

KNOWN_SHA256 = {
    "f37a24ce00e9fd75e254b211bd4070f6643ed4f1945d587e8a2fe0a53a39baac": "taichi_train_gt.pkl",
    "52ff03e1fef8b0f12ad6d1f083a6c611f6e7cfb064d46eb6146852ee244ad441": "taichi_test_gt.pkl",
}

PUBLISHED_GLOBALS = (
    "pandas.core.frame.DataFrame",
    "pandas.core.internals.BlockManager",
    "pandas.core.indexes.base._new_Index",
    "pandas.core.indexes.base.Index",
    "pandas.core.indexes.range.RangeIndex",
    "numpy.core.multiarray._reconstruct",
    "numpy.ndarray",
    "numpy.dtype",
    "builtins.slice",
)
CURRENT_GLOBALS = (
    "pandas.DataFrame",
    "pandas.core.internals.managers.BlockManager",
    "pandas._libs.internals._unpickle_block",
    "numpy._core.multiarray._reconstruct",
    "numpy._core.numeric._frombuffer",  # pickle protocol 5 (DataFrame.to_pickle's default)
    "numpy.core.numeric._frombuffer",
    "pandas.Index",
    "pandas.RangeIndex",
    "pandas._libs.arrays.__pyx_unpickle_NDArrayBacked",
    "pandas.arrays.StringArray",
    "pandas.core.arrays.string_.StringArray",
    "pandas.StringDtype",
    "pandas.core.arrays.string_.StringDtype",
)
ALLOWED_GLOBALS = frozenset(PUBLISHED_GLOBALS + CURRENT_GLOBALS)

# numeric dtype codes an array may be rebuilt with; "O" (object) arrays are rebuilt as element lists
_NUMERIC_CODES = frozenset({"f2", "f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1"})


# -- the inert stand-ins ---------------------------------------------------------------------------------------


class Stub:
    """Records how the pickle asked to build an object; runs nothing else."""

    qualname: ClassVar[str] = "?"
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    state: Any

    def __new__(cls, *args: Any, **kwargs: Any) -> Stub:
        obj = object.__new__(cls)
        obj.args = args
        obj.kwargs = kwargs
        obj.state = None
        return obj

    def __init__(self, *args: Any, **kwargs: Any) -> None:  # REDUCE calls cls(*args); __new__ kept them
        pass

    def __setstate__(self, state: Any) -> None:
        self.state = state

    def __repr__(self) -> str:
        return f"<stand-in {self.qualname}>"


_STUBS: dict[str, type[Stub]] = {
    name: type(name.rsplit(".", 1)[1], (Stub,), {"qualname": name, "__slots__": ()}) for name in ALLOWED_GLOBALS
}


def _is(obj: Any, *suffixes: str) -> bool:
    """Whether ``obj`` is a stand-in (instance or class) for a global whose name ends with one of ``suffixes``."""
    qual = obj.qualname if isinstance(obj, Stub) or (isinstance(obj, type) and issubclass(obj, Stub)) else ""
    return any(qual.endswith(s) for s in suffixes)


class RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the allow-listed globals, each to its stand-in."""

    def __init__(self, file: io.BufferedIOBase, where: str) -> None:
        super().__init__(file)
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        full = f"{module}.{name}"
        stub = _STUBS.get(full)
        if stub is None:
            raise DkpError(
                f"{self.where}: refusing to load: the pickle asks for {full}, which a Taichi ground-truth "
                f"DataFrame never needs (nothing from the file was executed)"
            )
        return stub

    def persistent_load(self, pid: Any) -> Any:
        raise DkpError(f"{self.where}: refusing to load: the pickle uses persistent ids")


def restricted_load(data: bytes, where: str) -> Any:
    """Unpickle ``data`` into a tree of stand-ins, builtins (str, int, float, bytes, list, tuple, dict) only."""
    try:
        return RestrictedUnpickler(io.BytesIO(data), where).load()
    except DkpError:
        raise
    except (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError, IndexError, KeyError,
            UnicodeDecodeError, OverflowError, RecursionError) as err:
        raise DkpError(f"{where}: not a readable pickle ({type(err).__name__}: {err})") from None


# -- rebuilding arrays and the DataFrame from the recorded tree ---------------------------------------------------


@dataclass
class ObjectArray:
    """An object-dtype array as the list of its elements (never a numpy object array)."""

    items: list[Any]
    shape: tuple[int, ...]
    fortran: bool = False

    def column(self, i: int) -> list[Any]:
        """Row ``i`` of a 2-D block (pandas stores a block as columns x rows)."""
        if len(self.shape) != 2:
            raise ValueError(f"expected a 2-D block, got shape {self.shape}")
        k, n = self.shape
        if self.fortran:
            return [self.items[j * k + i] for j in range(n)]
        return self.items[i * n:(i + 1) * n]

    def flat(self) -> list[Any]:
        return list(self.items)


def _dtype(stub: Any, where: str) -> tuple[str, str]:
    """(code, byte order) of a recorded ``numpy.dtype``."""
    if not _is(stub, "numpy.dtype") or not stub.args or not isinstance(stub.args[0], str):
        raise DkpError(f"{where}: malformed array dtype in the pickle")
    code = stub.args[0]
    order = "="
    if isinstance(stub.state, tuple) and len(stub.state) > 1 and stub.state[1] in ("<", ">", "|", "="):
        order = stub.state[1]
    return code, order


def _is_array(obj: Any) -> bool:
    return _is(obj, "multiarray._reconstruct", "numeric._frombuffer")


def rebuild_array(obj: Any, where: str) -> np.ndarray | ObjectArray:
    """A numpy array from a recorded ``_reconstruct`` call and its state (shape, dtype, fortran flag, data), or
    from a protocol-5 ``_frombuffer(data, dtype, shape, order)`` call."""
    if _is(obj, "numeric._frombuffer") and len(obj.args) == 4:
        raw, dtype_stub, shape, order = obj.args
        fortran = order == "F"
    elif _is(obj, "multiarray._reconstruct"):
        state = obj.state
        if not (isinstance(state, tuple) and len(state) == 5):
            raise DkpError(f"{where}: malformed array state in the pickle")
        _, shape, dtype_stub, fortran, raw = state
    else:
        raise DkpError(f"{where}: expected an array in the pickle, found {type(obj).__name__}")
    if not (isinstance(shape, tuple) and all(isinstance(s, int) and s >= 0 for s in shape)):
        raise DkpError(f"{where}: malformed array shape {shape!r} in the pickle")
    code, order = _dtype(dtype_stub, where)
    count = math.prod(shape)
    if code.startswith("O"):
        if not isinstance(raw, list) or len(raw) != count:
            raise DkpError(f"{where}: object array holds {len(raw) if isinstance(raw, list) else '?'} "
                           f"elements for shape {shape}")
        return ObjectArray(list(raw), shape, bool(fortran))
    if code not in _NUMERIC_CODES:
        raise DkpError(f"{where}: refusing array dtype {code!r} (only plain numbers are expected)")
    dtype = np.dtype(code)
    if order in ("<", ">"):
        dtype = dtype.newbyteorder(order)
    if not isinstance(raw, (bytes, bytearray)) or len(raw) != count * dtype.itemsize:
        raise DkpError(f"{where}: array data is {len(raw) if isinstance(raw, (bytes, bytearray)) else '?'} bytes "
                       f"for shape {shape} {code}")
    arr = np.frombuffer(bytes(raw), dtype=dtype).reshape(shape, order="F" if fortran else "C")
    return arr.astype(dtype.newbyteorder("="), copy=True)


def _values(obj: Any, where: str) -> np.ndarray | ObjectArray:
    """Array-like block or index values: a plain array, or a pandas extension array around one."""
    if _is_array(obj):
        return rebuild_array(obj, where)
    if _is(obj, "__pyx_unpickle_NDArrayBacked"):  # pandas 3 StringArray: state = (dtype, ndarray)
        state = obj.state
        if isinstance(state, tuple) and len(state) >= 2:
            return rebuild_array(state[1], where)
    raise DkpError(f"{where}: unexpected column data in the pickle ({obj!r})")


def _index(obj: Any, where: str) -> list[Any]:
    """The labels of a recorded ``_new_Index(cls, dict)`` (Index or RangeIndex)."""
    if not _is(obj, "_new_Index") or len(obj.args) != 2 or not isinstance(obj.args[1], dict):
        raise DkpError(f"{where}: malformed DataFrame index in the pickle")
    cls, d = obj.args
    if _is(cls, "RangeIndex"):
        try:
            return list(range(int(d.get("start", 0)), int(d["stop"]), int(d.get("step", 1))))
        except (KeyError, TypeError, ValueError):
            raise DkpError(f"{where}: malformed RangeIndex in the pickle") from None
    if not _is(cls, "Index"):
        raise DkpError(f"{where}: unexpected index type in the pickle")
    values = _values(d.get("data"), where)
    return values.flat() if isinstance(values, ObjectArray) else values.tolist()


def _slice_positions(obj: Any, where: str) -> list[int]:
    """Column positions of a block: a recorded ``slice(start, stop, step)`` or an integer array."""
    if _is(obj, "builtins.slice"):
        args = list(obj.args) + [None] * (3 - len(obj.args))
        start, stop, step = args[:3]
        r = range(start or 0, stop, step or 1)
        if len(r) > 10_000:  # a DataFrame of a few columns; refuse to materialise a hostile range
            raise DkpError(f"{where}: implausible block placement {r} in the pickle")
        return list(r)
    if _is_array(obj):
        arr = rebuild_array(obj, where)
        if isinstance(arr, np.ndarray):
            return [int(v) for v in arr.ravel()]
    raise DkpError(f"{where}: malformed block placement in the pickle")


def _manager_parts(mgr: Any, where: str) -> tuple[list[Any], list[tuple[Any, list[int]]]]:
    """(axes, [(block values, column positions)]) from either pickle generation of a BlockManager."""
    if not _is(mgr, "BlockManager"):
        raise DkpError(f"{where}: not a pandas DataFrame pickle (no BlockManager)")
    state = mgr.state
    if isinstance(state, tuple) and state and isinstance(state[-1], dict) and "0.14.1" in state[-1]:
        legacy = state[-1]["0.14.1"]  # the published files: {"axes": [...], "blocks": [{values, mgr_locs}]}
        axes = legacy.get("axes")
        blocks = [(b.get("values"), _slice_positions(b.get("mgr_locs"), where)) for b in legacy.get("blocks", [])]
        return list(axes or []), blocks
    if len(mgr.args) == 2:  # current pandas: BlockManager(blocks, axes) with _unpickle_block(values, locs, ndim)
        raw_blocks, axes = mgr.args
        blocks = []
        for b in raw_blocks:
            if not _is(b, "_unpickle_block") or len(b.args) < 2:
                raise DkpError(f"{where}: malformed DataFrame block in the pickle")
            blocks.append((b.args[0], _slice_positions(b.args[1], where)))
        return list(axes), blocks
    raise DkpError(f"{where}: unrecognised BlockManager layout in the pickle")


def dataframe_columns(root: Any, where: str) -> dict[str, list[Any]]:
    """Column name -> list of row values, from the stand-in tree of a pickled DataFrame."""
    if not _is(root, "DataFrame") or not isinstance(root.state, dict):
        raise DkpError(f"{where}: not a pandas DataFrame pickle")
    mgr = root.state.get("_mgr", root.state.get("_data"))
    axes, blocks = _manager_parts(mgr, where)
    if len(axes) != 2:
        raise DkpError(f"{where}: expected a 2-D DataFrame")
    columns, rows = _index(axes[0], where), _index(axes[1], where)
    n = len(rows)
    out: dict[str, list[Any]] = {}
    for values_obj, positions in blocks:
        values = _values(values_obj, where)
        shape = values.shape
        if len(shape) == 1 and len(positions) == 1 and shape[0] == n:  # an extension-array block (one column)
            out[str(columns[_check_pos(positions[0], columns, where)])] = (
                values.flat() if isinstance(values, ObjectArray) else values.tolist())
            continue
        if len(shape) != 2 or shape[0] != len(positions) or shape[1] != n:
            raise DkpError(f"{where}: DataFrame block of shape {shape} does not fit {len(positions)} columns "
                           f"x {n} rows")
        for i, pos in enumerate(positions):
            col = values.column(i) if isinstance(values, ObjectArray) else values[i].tolist()
            out[str(columns[_check_pos(pos, columns, where)])] = col
    return out


def _check_pos(pos: int, columns: list[Any], where: str) -> int:
    if not 0 <= pos < len(columns):
        raise DkpError(f"{where}: DataFrame block refers to column {pos} of {len(columns)}")
    return pos


# -- the Taichi ground truth -------------------------------------------------------------------------------------


@dataclass
class TaichiGT:
    """One ground-truth file: per frame the file name, frame number and 18 (x, y) pixel positions (-1 missing)."""

    file_names: list[str]
    frame_numbers: list[int]
    keypoints_xy: np.ndarray  # N x 18 x 2 float64, (x, y) pixels of the 256-px frame, -1 = missing
    source: str = ""
    sha256: str = ""
    warnings: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.file_names)

    @property
    def missing_values(self) -> int:
        return int((self.keypoints_xy == MISSING).sum())

    def keypoints_yx(self) -> np.ndarray:
        """N x 18 x 2 float32 in dkp's (y, x) order (the -1 markers kept)."""
        return np.ascontiguousarray(self.keypoints_xy[..., ::-1], dtype=np.float32)

    def visible(self) -> np.ndarray:
        """N x 18 bool: a joint counts as visible only when neither coordinate is -1."""
        return np.all(self.keypoints_xy != MISSING, axis=-1)

    def to_json(self) -> dict[str, Any]:
        return {
            "note": "Taichi ground truth converted by dkp: 18 joints, (x, y) pixels of the 256-px frame, -1 = missing",
            "source": self.source,
            "sha256": self.sha256,
            "frames": [
                {"file_name": f, "frame_number": int(n), "keypoints_xy": kp.tolist()}
                for f, n, kp in zip(self.file_names, self.frame_numbers, self.keypoints_xy, strict=True)
            ],
        }


def validate_gt(file_names: list[Any], frame_numbers: list[Any], values: list[Any], where: str) -> TaichiGT:
    """Shapes (N x 18 x 2), value range (-1 or 0-255, finite) and unique string file names."""
    n = len(file_names)
    if n == 0:
        raise DkpError(f"{where}: no frames")
    if len(values) != n or len(frame_numbers) != n:
        raise DkpError(f"{where}: columns disagree in length ({n} file names, {len(values)} values)")
    seen: set[str] = set()
    for i, name in enumerate(file_names):
        if not isinstance(name, str) or not name or "/" in name or "\\" in name or name in (".", ".."):
            raise DkpError(f"{where}: row {i}: file_name {name!r} is not a plain file name")
        if name in seen:
            raise DkpError(f"{where}: row {i}: file_name {name} appears twice")
        seen.add(name)
    kps = np.empty((n, N_JOINTS, 2), dtype=np.float64)
    for i, v in enumerate(values):
        arr = v if isinstance(v, np.ndarray) else np.asarray(v, dtype=np.float64) if _is_number_list(v) else None
        if arr is None or arr.shape != (N_JOINTS, 2):
            shape = getattr(arr, "shape", type(v).__name__)
            raise DkpError(f"{where}: row {i} ({file_names[i]}): expected {N_JOINTS}x2 keypoints, got {shape}")
        kps[i] = arr
    bad = ~np.isfinite(kps) | ((kps != MISSING) & ((kps < 0) | (kps > 255)))
    if bad.any():
        i, j, c = (int(t[0]) for t in np.nonzero(bad))
        raise DkpError(f"{where}: row {i} ({file_names[i]}) joint {j}: value {kps[i, j, c]} is neither -1 nor in "
                       f"0-255 (pixels of the 256-px frame); {int(bad.sum())} such values")
    frames: list[int] = []
    for i, f in enumerate(frame_numbers):
        if isinstance(f, bool) or not isinstance(f, (int, float, np.integer, np.floating)) or f != int(f):
            raise DkpError(f"{where}: row {i}: frame_number {f!r} is not an integer")
        frames.append(int(f))
    return TaichiGT([str(f) for f in file_names], frames, kps)


def _is_number_list(v: Any) -> bool:
    return isinstance(v, (list, tuple)) and all(
        isinstance(r, (list, tuple)) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in r)
        for r in v)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_taichi_gt_pickle(path: str | Path) -> TaichiGT:
    """The published ``taichi_{train,test}_gt.pkl`` (or a DataFrame re-saved by pandas), read safely."""
    path = Path(path)
    where = str(path)
    try:
        size = path.stat().st_size
        if size > MAX_PICKLE_BYTES:
            raise DkpError(f"{where}: {size} bytes is far larger than a Taichi ground-truth file; refusing")
        data = path.read_bytes()
    except FileNotFoundError:
        raise DkpError(f"{where}: missing") from None
    except OSError as err:
        raise DkpError(f"{where}: unreadable ({err.strerror})") from None
    digest = hashlib.sha256(data).hexdigest()
    tree = restricted_load(data, where)
    try:  # the tree is inert data, but a crafted one may be malformed anywhere
        columns = dataframe_columns(tree, where)
        missing = [c for c in ("file_name", "value") if c not in columns]
        if missing:
            raise DkpError(f"{where}: DataFrame lacks column(s) {', '.join(missing)} (has {', '.join(columns)})")
        names = columns["file_name"]
        values = [rebuild_array(v, f"{where} row {i}") if isinstance(v, Stub) else v
                  for i, v in enumerate(columns["value"])]
    except (TypeError, ValueError, AttributeError, IndexError, KeyError, OverflowError) as err:
        raise DkpError(f"{where}: malformed DataFrame pickle ({type(err).__name__}: {err})") from None
    frames = columns.get("frame_number", [0] * len(names))
    gt = validate_gt(names, frames, values, where)
    gt.source, gt.sha256 = path.name, digest
    if digest not in KNOWN_SHA256:
        gt.warnings.append(f"{path.name}: SHA-256 {digest[:16]}... is not one of the published Taichi "
                           f"ground-truth files; read it anyway ({len(gt)} frames)")
    return gt


def read_taichi_gt_json(path: str | Path) -> TaichiGT:
    """A JSON copy: ``{"frames": [{file_name, frame_number, keypoints_xy}]}`` or the bare list of frames."""
    path = Path(path)
    where = str(path)
    try:
        raw = path.read_bytes()
        data = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise DkpError(f"{where}: missing") from None
    except OSError as err:
        raise DkpError(f"{where}: unreadable ({err.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DkpError(f"{where}: not valid JSON ({err})") from None
    frames = data.get("frames") if isinstance(data, dict) else data
    if not isinstance(frames, list) or not all(isinstance(f, dict) for f in frames):
        raise DkpError(f"{where}: expected a list of frames ({{file_name, frame_number, keypoints_xy}})")
    try:
        names = [f["file_name"] for f in frames]
        values = [f["keypoints_xy"] for f in frames]
    except KeyError as err:
        raise DkpError(f"{where}: a frame lacks {err}") from None
    gt = validate_gt(names, [f.get("frame_number", 0) for f in frames], values, where)
    gt.source = path.name
    gt.sha256 = hashlib.sha256(raw).hexdigest()
    return gt


def read_taichi_gt(path: str | Path) -> TaichiGT:
    """Either format, chosen by the extension (``.json``; anything else is read as a pickle)."""
    path = Path(path)
    return read_taichi_gt_json(path) if path.suffix.lower() == ".json" else read_taichi_gt_pickle(path)


def convert_taichi_gt(src: str | Path, dst: str | Path) -> TaichiGT:
    """Read a ground-truth file safely and write its JSON copy (atomically)."""
    gt = read_taichi_gt(src)
    write_json(dst, gt.to_json(), indent=None)
    return gt
