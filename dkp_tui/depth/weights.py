"""Where a depth model's files are: a local directory or the Hugging Face cache, downloading only when allowed.

Nothing here imports torch or transformers (seconds to import), so a missing model offline fails in about a second
with one line that says how to provide it. A hub id is looked up in the cache with huggingface_hub; a download is
attempted only when ``HF_HUB_OFFLINE`` is unset and one 3-second probe of the endpoint answers, because
huggingface_hub retries an unreachable host with back-off for about 90 s. A cached model is used as it is: no
network request checks for a newer revision, so a cache never changes under a resumed run.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from dkp_tui.errors import DkpError

DEFAULT_MODEL = "Intel/dpt-swinv2-large-384"
FAST_MODEL = "Intel/dpt-swinv2-tiny-256"
PROBE_TIMEOUT_S = 3.0
WEIGHT_SUFFIXES = (".safetensors", ".bin")

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_TRUE = {"1", "on", "yes", "true"}


@dataclass(frozen=True)
class ModelSource:
    spec: str  # what the user passed
    directory: Path | None  # config.json, preprocessor_config.json and weights; None until downloaded
    repo_id: str | None  # the Hugging Face id, for hub models
    revision: str | None  # the hub commit, when known
    name: str  # the default cache tag


def hub_cache_dir() -> Path:
    """The hub cache as the environment says now (huggingface_hub reads it once, at import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return Path(os.environ["HF_HUB_CACHE"]).expanduser()
    if os.environ.get("HF_HOME"):
        return Path(os.environ["HF_HOME"]).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg).expanduser() / "huggingface" / "hub"


def hub_offline() -> bool:
    return any(os.environ.get(v, "").strip().lower() in _TRUE for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def hub_endpoint() -> str:
    return (os.environ.get("HF_ENDPOINT") or "https://huggingface.co").rstrip("/")


def _directory_name(path: Path) -> str:
    """A model directory's name; for a hub snapshot (``models--org--name/snapshots/<commit>``) the model's name."""
    path = path.resolve()
    if _HEX40.match(path.name) and path.parent.name == "snapshots" and path.parent.parent.name.startswith("models--"):
        return path.parent.parent.name.split("--")[-1]
    return path.name


def _path_only(spec: str) -> bool:
    return spec.startswith((".", "/", "~")) or spec.endswith("/") or not _REPO_ID.match(spec)


def resolve_model(spec: str) -> ModelSource:
    """A local directory or a hub id, located without importing transformers (a clear error when neither).

    A value shaped like a hub id (``Intel/dpt-swinv2-large-384``) means a local directory only when that directory
    is a model (holds config.json): a folder that merely shares the id's name does not hide the hub model. Write
    ``./name`` to mean the directory whatever it holds.
    """
    path = Path(spec).expanduser()
    is_model_dir = path.is_dir() and (path / "config.json").is_file()
    if is_model_dir:
        resolved = path.resolve()
        revision = resolved.name if _HEX40.match(resolved.name) else None
        return ModelSource(spec, resolved, None, revision, _directory_name(resolved))
    if _path_only(spec):
        if path.is_dir():
            raise DkpError(f"--model {spec}: not a model directory (no config.json); it needs config.json, "
                           "preprocessor_config.json and the weights (model.safetensors)")
        if path.exists():
            raise DkpError(f"--model {spec}: is a file; pass a model directory or a Hugging Face id like "
                           f"{DEFAULT_MODEL}")
        raise DkpError(f"--model {spec}: no such directory, and not a Hugging Face model id like {DEFAULT_MODEL}")
    snapshot = _cached_snapshot(spec)
    name = spec.split("/")[-1]
    if snapshot is not None:
        return ModelSource(spec, snapshot, spec, snapshot.name, name)
    return ModelSource(spec, None, spec, None, name)


def _shadow_note(repo_id: str) -> str:
    """Names the other reading when a local path shares the hub id's name (it was not a model directory)."""
    if not Path(repo_id).expanduser().exists():
        return ""
    return f" (./{repo_id} exists but is not a model directory, no config.json, so it was read as a hub id)"


def _cached_snapshot(repo_id: str) -> Path | None:
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json", cache_dir=hub_cache_dir())
    if isinstance(found, str) and _weight_files(Path(found).parent):
        return Path(found).parent
    return None


def _missing(repo_id: str, reason: str) -> DkpError:
    return DkpError(
        f"depth model {repo_id} is not in the Hugging Face cache ({hub_cache_dir()}) and {reason}: download it "
        f"once where there is network (it is stored under HF_HOME), set HF_HOME to a cache that has it, or pass "
        f"--model PATH to a local directory with config.json, preprocessor_config.json and the weights"
        f"{_shadow_note(repo_id)}")


def _probe(repo_id: str) -> None:
    """One short request, so that no network means an error in seconds rather than 90 s of retries."""
    from huggingface_hub.utils import get_session

    url = f"{hub_endpoint()}/api/models/{repo_id}"
    try:
        response = get_session().head(url, timeout=PROBE_TIMEOUT_S)
    except Exception as err:  # noqa: BLE001 - any transport failure means "no network" to the user
        raise _missing(repo_id, f"{hub_endpoint()} cannot be reached ({type(err).__name__})") from None
    if response.status_code in (401, 403, 404):
        raise DkpError(f"--model {repo_id}: not found on {hub_endpoint()} (HTTP {response.status_code}): check the "
                       f"id (a gated model needs `hf auth login`), or pass --model PATH{_shadow_note(repo_id)}")
    if response.status_code >= 500:
        raise _missing(repo_id, f"{hub_endpoint()} answered HTTP {response.status_code}")


def fetch_model(source: ModelSource) -> ModelSource:
    """Download a hub model that is not cached yet (config, processor, safetensors weights); offline fails fast."""
    if source.directory is not None:
        return source
    assert source.repo_id is not None
    if hub_offline():
        raise _missing(source.repo_id, "HF_HUB_OFFLINE is set")
    _probe(source.repo_id)
    from huggingface_hub import snapshot_download

    try:
        directory = Path(snapshot_download(source.repo_id, cache_dir=hub_cache_dir(),
                                           allow_patterns=["*.json", "*.safetensors"]))
        if not _weight_files(directory):  # an older repository with only PyTorch weights
            directory = Path(snapshot_download(source.repo_id, cache_dir=hub_cache_dir(),
                                               allow_patterns=["*.json", "pytorch_model.bin"]))
    except Exception as err:  # noqa: BLE001 - network and hub errors become one line
        raise DkpError(f"--model {source.repo_id}: download failed ({type(err).__name__}: "
                       f"{str(err).splitlines()[0] if str(err) else ''})") from None
    if not _weight_files(directory):
        raise DkpError(f"--model {source.repo_id}: the repository has no model weights")
    return ModelSource(source.spec, directory, source.repo_id, directory.name, source.name)


def _weight_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.name != "training_args.bin")


def weights_sha256(directory: Path) -> str:
    """The weights' identity: hub blobs are already named by their SHA-256; other files are hashed."""
    parts = []
    for path in _weight_files(directory):
        target = path.resolve()
        if _HEX64.match(target.name):
            digest = target.name
        else:
            h = hashlib.sha256()
            with open(path, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 24), b""):
                    h.update(chunk)
            digest = h.hexdigest()
        parts.append((path.name, digest))
    if len(parts) == 1:
        return parts[0][1]
    return hashlib.sha256("".join(f"{n}:{d}\n" for n, d in parts).encode()).hexdigest()
