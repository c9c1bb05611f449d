"""Content hashes of the tensor files dkp writes, checked on every load: a flipped byte is an error, never a score.

The hash is XXH3-128 (``xxhash``): it detects damage (a flipped byte, a torn or truncated write) as surely as a
cryptographic hash, and at ~15 GB/s per core against SHA-256's ~1.3 GB/s it adds a few per cent to loading a 310 MB
checkpoint instead of more than doubling it (``benchmarks/hash_cost.py``). It does not authenticate a file: someone
who can rewrite the tensors can rewrite the table too, with any hash.

Safetensors files (weights, checkpoints) carry, in their metadata under ``dkp_xxh3``, a JSON table of the hash
of every tensor (its dtype, shape and raw bytes) and of the rest of the metadata (``__metadata__``). Per tensor rather than one digest of
the file, so that a mismatch names the tensor and large files are verified by several threads at once (xxhash
releases the GIL). Loading hashes the tensors where safetensors mapped them, with no copy, so the check is the first read of the
file, not a second one.
Depth shards (``.npy``) keep the XXH3-128 of their array bytes in their ``.stats.json``.

Files written before this existed carry no hashes and load as before.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import xxhash

from dkp_tui.errors import DkpError

if TYPE_CHECKING:
    import numpy as np
    import torch

HASH_KEY = "dkp_xxh3"
META_ENTRY = "__metadata__"  # the digest of the metadata other than HASH_KEY
PARALLEL_FROM = 8 * 2**20  # bytes: below this, starting threads costs more than it saves
_IO_ERROR = re.compile(r"os error (\d+)|code: (\d+)")  # "I/O error: No space left on device (os error 28)"


def bytes_digest(data: memoryview | bytes) -> str:
    return xxhash.xxh3_128_hexdigest(data)


def array_digest(array: np.ndarray) -> str:
    """XXH3-128 of a C-contiguous array's bytes (a memory map is read, not copied)."""
    import numpy as np

    return bytes_digest(memoryview(np.ascontiguousarray(array)).cast("B"))


# torch dtype -> the name safetensors writes in the header: the digest's prefix, the same from a tensor (on save)
# and from the file's header (on load)
_DTYPE_NAMES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
                "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL", "uint16": "U16",
                "uint32": "U32", "uint64": "U64", "complex64": "C64"}


def _prefix(dtype: str, shape: list[int]) -> bytes:
    return f"{dtype}{list(shape)}\n".encode()


def tensor_digest(tensor: torch.Tensor) -> str:
    """XXH3-128 of a CPU tensor's dtype, shape and raw bytes in row-major order (viewed as bytes, not converted):
    a damaged header that still parses (F32 read as I32, another shape) changes it as surely as a damaged byte.
    The same for a tensor in memory (on save) and one mapped from its file (on load): raw little-endian bytes
    both."""
    import torch

    name = str(tensor.dtype).removeprefix("torch.")
    h = xxhash.xxh3_128(_prefix(_DTYPE_NAMES.get(name, name), list(tensor.shape)))
    t = tensor.detach().contiguous().reshape(-1)
    if t.dtype != torch.uint8:
        t = t.view(torch.uint8)
    h.update(memoryview(t.numpy()))
    return h.hexdigest()


def metadata_digest(metadata: dict[str, str]) -> str:
    return bytes_digest(json.dumps({k: v for k, v in metadata.items() if k != HASH_KEY}, sort_keys=True).encode())


@contextmanager
def _pool() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1)), thread_name_prefix="dkp-hash") as p:
        yield p


def digests(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> dict[str, str]:
    """The ``dkp_xxh3`` table of ``tensors`` and ``metadata``."""
    table = dict(_digests(tensors))
    table[META_ENTRY] = metadata_digest(metadata)
    return table


def _io_error(err: Exception) -> OSError | None:
    """The OSError inside a safetensors error (it reports a full disk only as text)."""
    m = _IO_ERROR.search(str(err))
    if m is None:
        return None
    code = int(m.group(1) or m.group(2))
    return OSError(code, os.strerror(code))


def save_safetensors(path: str | os.PathLike[str], tensors: dict[str, torch.Tensor],
                     metadata: dict[str, str] | None = None) -> None:
    """Atomic ``safetensors.torch.save_file`` with the hash table added to the metadata."""
    from safetensors import SafetensorError
    from safetensors.torch import save_file

    from dkp_tui.atomic import write_with

    meta = dict(metadata or {})
    meta[HASH_KEY] = json.dumps(digests(tensors, meta), sort_keys=True)

    def write(tmp: Path) -> None:
        try:
            save_file(tensors, str(tmp), metadata=meta)
        except SafetensorError as err:
            io = _io_error(err)
            if io is None:
                raise
            raise io from None  # atomic turns it into "cannot write PATH: No space left on device (ENOSPC)"

    write_with(Path(path), write, suffix=".safetensors")


def damaged(path: str | os.PathLike[str], what: str) -> DkpError:
    return DkpError(f"{path}: damaged: hash mismatch ({what}); the file was changed on disk after dkp wrote it: "
                    "restore it from a copy or write it again")


def load_safetensors(path: str | os.PathLike[str]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Read every tensor and the metadata, verifying the hashes (see the module docstring).

    The tensors are hashed where safetensors mapped them, so the check faults in exactly the pages the caller
    reads next (a resume's first optimizer step reads every moment anyway): its cost is the hash itself.
    Raises ``SafetensorError``/``OSError`` for an unreadable file (the callers word those) and a DkpError
    "damaged: hash mismatch" for a file whose bytes are not those that were written.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    tensors = load_file(str(path))  # checks the header's structure; maps the data lazily
    with safe_open(str(path), framework="pt") as fh:
        metadata = dict(fh.metadata() or {})
    table = _hash_table(path, metadata)
    if table is None:
        return tensors, metadata
    missing = sorted(set(table) - set(tensors) - {META_ENTRY})
    if missing:
        raise damaged(path, f"tensor {missing[0]} is missing")
    if table.get(META_ENTRY) != metadata_digest(metadata):
        raise damaged(path, "metadata")
    for name, digest in _digests(tensors):
        if table.get(name) != digest:
            raise damaged(path, f"tensor {name}" if name in table else f"tensor {name} is not in the hashes")
    return tensors, metadata


def _digests(tensors: dict[str, torch.Tensor]) -> Iterator[tuple[str, str]]:
    """(name, digest) of tensors in memory (on save); large sets in parallel threads."""
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    if total < PARALLEL_FROM or (os.cpu_count() or 1) == 1:
        for name, t in tensors.items():
            yield name, tensor_digest(t)
        return
    with _pool() as pool:
        futures = [(name, pool.submit(tensor_digest, t)) for name, t in tensors.items()]
        for name, fut in futures:
            yield name, fut.result()


def _hash_table(path: str | os.PathLike[str], metadata: dict[str, str]) -> dict[str, str] | None:
    if HASH_KEY not in metadata:
        return None  # written before dkp hashed its files
    try:
        table = json.loads(metadata[HASH_KEY])
    except json.JSONDecodeError:
        raise damaged(path, "the hash table is not JSON") from None
    if not isinstance(table, dict):
        raise damaged(path, "the hash table is not a table")
    return table

