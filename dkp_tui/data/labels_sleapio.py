"""Label files read through sleap-io, the field's own label library (the ``labels`` extra).

dkp reads COCO keypoints JSON, DeepLabCut CSV and its plain CSV itself (``dkp_tui.data.labels``): for those,
sleap-io 0.9 does not read the same thing. It drops a label whose image is not on disk beside the label file (so a
video frame named ``clip.mp4#12`` vanishes), sorts DeepLabCut's body parts alphabetically, and takes a duplicate
image, a repeated DeepLabCut row or a skeleton edge to a joint that does not exist without a word, where dkp names
the file and the entry. Every other format sleap-io reads that holds single-person keypoints comes in here:
SLEAP ``.slp``, NWB (ndx-pose), Label Studio JSON and Ultralytics YOLO pose data sets.

sleap-io gives frames of videos: a video file's frame is named ``<video path>#<frame index>``, an image sequence's
frame by its image path, as the data-set layout names them; ``labels.match_names`` then finds them in the source
folder by path or unique path tail. Only user-labelled instances count (predictions in a ``.slp`` are not labels);
a frame with two labelled instances is refused (dkp learns one person per frame).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dkp_tui.errors import DkpError
from dkp_tui.extras import require

FORMATS = ("slp", "nwb", "labelstudio", "ultralytics")
SUFFIXES = {".slp": "slp", ".nwb": "nwb"}
ULTRALYTICS_SPLITS = ("train", "val", "test")


def sniff(path: Path) -> str:
    """slp | nwb | ultralytics from the name alone (binary files and folders are never read as text), else ""."""
    if path.suffix.lower() in SUFFIXES:
        return SUFFIXES[path.suffix.lower()]
    if path.is_dir() and (path / "data.yaml").is_file() or path.name == "data.yaml":
        return "ultralytics"
    return ""


def _load(path: Path, fmt: str) -> Any:
    sio = require("sleap_io")
    if not path.exists():
        raise DkpError(f"{path}: no such label file")
    try:
        if fmt == "ultralytics":
            root = path.parent if path.is_file() else path
            return [sio.load_ultralytics(str(root), split=split) for split in ULTRALYTICS_SPLITS
                    if (root / split).is_dir()]
        return [sio.load_file(str(path), format=fmt)]
    except DkpError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever a reader raises on a malformed file is the user's to fix
        first = str(err).splitlines()[0] if str(err) else ""
        raise DkpError(f"{path}: sleap-io cannot read it as {fmt} ({type(err).__name__}: {first})") from None


def frame_name(video: Any, frame_idx: int) -> str:
    """An image sequence's frame by its image path; a video file's as ``<path>#<frame index>``."""
    filename = video.filename
    if isinstance(filename, list | tuple):
        return str(filename[frame_idx])
    from dkp_tui.data.images import is_image

    return str(filename) if is_image(Path(filename)) else f"{filename}#{frame_idx}"


def read(path: Path, fmt: str) -> tuple[list[str], list[tuple[int, int]], dict[str, np.ndarray],
                                        dict[str, np.ndarray]]:
    """(joint names, 0-based skeleton, name -> J x 2 (x, y), name -> J present) of a file sleap-io reads."""
    sets = _load(path, fmt)
    # by content: each Ultralytics split builds its own, equal, skeleton
    skeletons = {(tuple(str(n) for n in s.node_names), tuple((int(a), int(b)) for a, b in s.edge_inds))
                 for labels in sets for s in labels.skeletons}
    if len(skeletons) != 1:
        raise DkpError(f"{path}: {len(skeletons)} skeletons; dkp reads files with exactly one")
    node_names, edge_inds = next(iter(skeletons))
    names, edges = list(node_names), list(edge_inds)
    xy: dict[str, np.ndarray] = {}
    present: dict[str, np.ndarray] = {}
    for labels in sets:
        for lf in labels.labeled_frames:
            instances = list(lf.user_instances)
            if not instances:
                continue  # predictions only: nothing labelled on this frame
            name = frame_name(lf.video, int(lf.frame_idx))
            if len(instances) > 1:
                raise DkpError(f"{path}: {name!r}: {len(instances)} labelled instances; dkp reads one person per "
                               "frame")
            if name in xy:
                raise DkpError(f"{path}: {name!r}: labelled twice")
            points = np.asarray(instances[0].numpy(), dtype=np.float64).reshape(len(names), 2)
            ok = np.isfinite(points).all(axis=1)
            xy[name] = np.where(ok[:, None], points, 0.0)
            present[name] = ok
    return names, edges, xy, present
