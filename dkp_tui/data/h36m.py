"""Human3.6M, the processed set of Zhang et al. (128-px person crops), planned as a dkp data set.

```
<root>/S{1,5,6,7,8,9,11}/WithBackground/<Action[ n].<camera>>/<frame>.jpg
<root>/S*/Landmarks/<same folder>/<frame>.mat     keypoints_2d: 32 x 2 in [0, 1] of the crop
<root>/S*/BackgroudMask/<same folder>/<frame>.png (sic) figure mask, for --without-background only
```

The protocol's six actions are matched as folder-name *prefixes*, as the reference does (so "Walking" would also
take a "WalkingDog" folder); the folders matched per action are reported. S1 and S5-S9 form ``train``, which is
also the regression ``fit`` split (``same_as``: stored once); S11 is ``test``. Labels are stored as the .mat
holds them: normalised to [0, 1] (``label_scale`` 1.0) in (row, col) = (y, x) order; the reference feeds them to
the regression unswapped next to its (y, x) detections, while it swaps Taichi's and DeepFashion's (x, y).

``--without-background`` multiplies each frame by its mask as the reference does: it multiplies the normalised
image, so the background becomes 0, i.e. mid-grey (128), not black. The mask is stored too (``masks.npy``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from dkp_tui.data import images as im
from dkp_tui.data.prepare_common import Frame, Plan, Problem, Reporter, SplitPlan, source_root
from dkp_tui.errors import DkpError

ACTIONS = ("Directions", "Discussion", "Posing", "Waiting", "Greeting", "Walking")
TRAIN_SUBJECTS = ("S1", "S5", "S6", "S7", "S8", "S9")
TEST_SUBJECTS = ("S11",)
N_JOINTS = 32
MASK_DIRS = ("BackgroudMask", "BackgroundMask")  # the published spelling first

# the Human3.6M motion-capture skeleton (names from its metadata; the processed set does not state them)
H36M_JOINTS = ("hips", "r_up_leg", "r_leg", "r_foot", "r_toe_base", "r_toe_end", "l_up_leg", "l_leg", "l_foot",
               "l_toe_base", "l_toe_end", "spine", "spine1", "neck", "head", "head_end", "l_shoulder", "l_arm",
               "l_forearm", "l_hand", "l_thumb", "l_thumb_end", "l_wrist_end", "l_wrist_end_site", "r_shoulder",
               "r_arm", "r_forearm", "r_hand", "r_thumb", "r_thumb_end", "r_wrist_end", "r_wrist_end_site")
H36M_PARENTS = (-1, 0, 1, 2, 3, 4, 0, 6, 7, 8, 9, 0, 11, 12, 13, 14, 12, 16, 17, 18, 19, 20, 19, 22, 12, 24, 25, 26,
                27, 28, 27, 30)
H36M_SKELETON = tuple((p, i) for i, p in enumerate(H36M_PARENTS) if p >= 0)


def _loadmat() -> object:
    try:
        import scipy.io
    except ImportError:
        raise DkpError("reading the H36M landmark .mat files needs scipy: pip install 'dkp-tui[h36m]' "
                       "(or pip install scipy)") from None
    return scipy.io.loadmat


def read_keypoints(path: str | Path, loadmat: object | None = None) -> np.ndarray:
    """``keypoints_2d`` of one landmark file as float32 32 x 2; BadInput when missing or malformed."""
    loadmat = loadmat or _loadmat()
    try:
        data = loadmat(str(path), variable_names=["keypoints_2d"])  # type: ignore[operator]
    except FileNotFoundError:
        raise im.BadInput("missing landmark file") from None
    except Exception as err:  # scipy raises many types (ValueError, TypeError, MatReadError, struct.error)
        raise im.BadInput(f"unreadable .mat ({type(err).__name__}: {err})") from None
    if "keypoints_2d" not in data:
        raise im.BadInput("no keypoints_2d variable")
    kp = np.asarray(data["keypoints_2d"])
    if kp.shape != (N_JOINTS, 2) or not np.issubdtype(kp.dtype, np.number):
        raise im.BadInput(f"keypoints_2d is {kp.dtype} {kp.shape}, expected {N_JOINTS}x2 numbers")
    if not np.isfinite(kp).all():
        raise im.BadInput("keypoints_2d holds NaN or infinity")
    return kp.astype(np.float32)


def match_actions(folders: list[str]) -> dict[str, list[str]]:
    """Action -> folders whose name starts with it (the reference's prefix rule)."""
    return {a: sorted((f for f in folders if f.startswith(a)), key=im.natural_key) for a in ACTIONS}


def _subject_dir(root: Path, subject: str, name: str) -> Path:
    d = root / subject / name
    if not d.is_dir():
        raise DkpError(f"{d}: missing folder (the protocol trains on {', '.join(TRAIN_SUBJECTS)} and tests on "
                       f"{', '.join(TEST_SUBJECTS)})")
    return d


def _mask_dir(root: Path, subject: str) -> Path:
    for name in MASK_DIRS:
        if (root / subject / name).is_dir():
            return root / subject / name
    raise DkpError(f"{root / subject / MASK_DIRS[0]}: missing folder (--without-background needs the masks)")


def _plan_subjects(root: Path, subjects: tuple[str, ...], split: str, without_background: bool,
                   matched: dict[str, dict[str, list[str]]]) -> tuple[SplitPlan, list[Path]]:
    sp = SplitPlan(crop="none", require_square=True, label_scale=1.0)
    landmarks: list[Path] = []
    for subject in subjects:
        images = _subject_dir(root, subject, "WithBackground")
        marks = _subject_dir(root, subject, "Landmarks")
        masks = _mask_dir(root, subject) if without_background else None
        folders = [p.name for p in images.iterdir() if p.is_dir() and not p.name.startswith(".")]
        per_action = match_actions(folders)
        matched[subject] = per_action
        for action in ACTIONS:
            for folder in per_action[action]:
                files = sorted((p for p in (images / folder).iterdir()
                                if p.is_file() and p.suffix.lower() in (".jpg", ".jpeg") and not p.name.startswith(".")),
                               key=lambda p: im.natural_key(p.stem))
                for f in files:
                    mask = str(masks / folder / f"{f.stem}.png") if masks else ""
                    sp.frames.append(Frame(f"{subject}/{folder}/{f.name}", str(f), mask=mask))
                    landmarks.append(marks / folder / f"{f.stem}.mat")
        if not any(per_action.values()):
            raise DkpError(f"{images}: no folder starts with any of the actions {', '.join(ACTIONS)}")
    return sp, landmarks


def _read_labels(sp: SplitPlan, split: str, landmarks: list[Path], reporter: Reporter) -> list[Problem]:
    loadmat = _loadmat()
    kps = np.full((len(landmarks), N_JOINTS, 2), np.nan, dtype=np.float32)
    problems: list[Problem] = []
    with reporter.task(f"reading {split} landmarks", len(landmarks)) as advance:
        for i, path in enumerate(landmarks):
            try:
                kps[i] = read_keypoints(path, loadmat)
            except im.BadInput as err:
                problems.append(Problem(str(path), str(err), split, i))
            if i % 1024 == 1023:
                advance(1024)
        advance(len(landmarks) % 1024)
    sp.keypoints = kps
    sp.visible = np.ones(kps.shape[:2], dtype=bool)
    return problems


def _action_notes(matched: dict[str, dict[str, list[str]]]) -> list[str]:
    """Per action: how many folders matched and the distinct names (camera ids removed), so that a surprising
    prefix match (e.g. "WalkingDog" under "Walking") is visible."""
    notes = []
    for action in ACTIONS:
        folders = [f for per in matched.values() for f in per[action]]
        kinds = sorted({f.rsplit(".", 1)[0] for f in folders}, key=im.natural_key)
        notes.append(f"h36m: {action}: {len(folders)} folders ({', '.join(kinds) or 'none'})")
    return notes


def plan_h36m(root: str | Path, without_background: bool = False, reporter: Reporter | None = None) -> Plan:
    """List the six actions' frames of S1, S5-S9 (train = fit) and S11 (test) with their landmarks."""
    root = source_root(root, "the processed Human3.6M root with S1, S5, ... folders")
    reporter = reporter or Reporter(enabled=False)
    _loadmat()  # fail early and clearly when scipy is missing
    matched: dict[str, dict[str, list[str]]] = {}
    train, train_marks = _plan_subjects(root, TRAIN_SUBJECTS, "train", without_background, matched)
    test, test_marks = _plan_subjects(root, TEST_SUBJECTS, "test", without_background, matched)
    problems = _read_labels(train, "train", train_marks, reporter) + _read_labels(test, "test", test_marks, reporter)
    notes = _action_notes(matched)
    notes.append(f"h36m: train/fit {len(train.frames)} frames ({', '.join(TRAIN_SUBJECTS)}), test {len(test.frames)} "
                 f"frames ({', '.join(TEST_SUBJECTS)}), {'without' if without_background else 'with'} background")
    return Plan(
        kind="h36m",
        root=root,
        splits={"train": train, "fit": SplitPlan(same_as="train"), "test": test},
        joint_names=list(H36M_JOINTS),
        skeleton=list(H36M_SKELETON),
        source={"variant": "without_background" if without_background else "with_background",
                "actions": list(ACTIONS), "train_subjects": list(TRAIN_SUBJECTS),
                "test_subjects": list(TEST_SUBJECTS), "folders": matched,
                "label_units": "normalised to [0, 1] of the crop, (y, x) as in keypoints_2d",
                "options": {"without_background": without_background}},
        inputs=[str(p) for p in train_marks + test_marks],
        problems=problems,
        notes=notes,
    )
