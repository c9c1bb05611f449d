"""The bad-input matrix: every command, given what a user gets wrong, answers one line and exit code 2.

Each case builds its bad input in a fresh working directory, runs the command through Typer's runner as a user
would, and checks: exit code 2, exactly one line on stderr (``dkp: error: ...``) naming the offending path or
key, no traceback, and nothing written (no temporary files, no manifest, no run directory) in the working
directory or in the shared fixtures. CUDA is hidden in every case, so `--device cuda` fails the same way on a
machine with a GPU.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from dkp_testing import tiny_overrides
from PIL import Image
from typer.testing import CliRunner

from dkp_tui.cli import app
from dkp_tui.config import preset_names

runner = CliRunner()
SIZE = 32  # data sets and models of the matrix are 32 px: every fixture trains in about a second


@dataclass(frozen=True)
class Env:
    root: Path  # everything below is read-only for the cases
    ds: Path  # synthetic, labelled, with its exact depth cache
    nodepth: Path  # the same without depth/
    plain: Path  # `dkp prepare folder` of three images: train split only, names.json, no depth
    teacher: Path
    student: Path
    newer: Path  # the student, with run.json from a newer run format
    truncated: Path  # the student's weights cut in half


def _sets(dataset: Path, **extra: object) -> list[str]:
    out: list[str] = []
    for item in tiny_overrides(dataset, iterations=1, **{"model__image_size": SIZE, **extra}):
        out += ["--set", item]
    return out


def _ok(args: list[str]) -> None:
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output


def _png(path: Path, size: int = SIZE, value: int = 128) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)
    return path


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("bad-input")
    ds = root / "ds"
    _ok(["prepare", "synthetic", "--out", ds, "--size", SIZE, "--n-train", 8, "--n-fit", 8, "--n-test", 8, "-q"])
    nodepth = root / "nodepth"
    shutil.copytree(ds, nodepth, ignore=shutil.ignore_patterns("depth"))
    for k in range(3):
        _png(root / "frames" / f"{k:03d}.png", value=40 * k)
    plain = root / "plain"
    _ok(["prepare", "folder", root / "frames", "--out", plain, "--size", SIZE, "-q"])
    teacher, student = root / "teacher", root / "student"
    _ok(["train", "--teacher", "depth", *_sets(ds), "--run", teacher, "-q"])
    _ok(["train", *_sets(ds, kd__gamma=0.5), "--teacher-run", teacher, "--run", student, "-q"])
    newer = root / "newer"
    shutil.copytree(student, newer)
    info = json.loads((newer / "run.json").read_text())
    (newer / "run.json").write_text(json.dumps({**info, "format_version": 99, "dkp_version": "99.0"}))
    truncated = root / "truncated.safetensors"
    data = (student / "model.safetensors").read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    return Env(root, ds, nodepth, plain, teacher, student, newer, truncated)


# -- the cases: each returns (argv, a substring the error line must contain) --------------------------------------

Case = Callable[[Env, Path], tuple[list[object], str]]
CASES: dict[str, Case] = {}


def case(fn: Case) -> Case:
    CASES[fn.__name__] = fn
    return fn


def _notes(cwd: Path) -> None:
    """A plain file, notes.txt, where a command expects a folder (or a folder's parent)."""
    (cwd / "notes.txt").write_text("my notes\n")


def _taichi_root(root: Path) -> Path:
    """The smallest Taichi download `dkp prepare taichi` accepts: one clip, one labelled frame per eval split."""
    for k in range(2):
        _png(root / "train" / "clip0" / f"{k:03d}.png", size=40, value=60 * k)
    (root / "landmark").mkdir(parents=True)
    for which in ("train", "test"):
        _png(root / "eval_images" / "taichi-256" / which / "00000.png", size=256)
        frames = [{"file_name": "00000.png", "frame_number": 0, "keypoints_xy": [[100.0, 120.0]] * 18}]
        (root / "landmark" / f"taichi_{which}_gt.json").write_text(json.dumps({"frames": frames}))
    return root


# prepare ---------------------------------------------------------------------------------------------------------

@case
def prepare_taichi_with_a_folder_named_taichi(env: Env, cwd: Path):
    (cwd / "taichi").mkdir()  # the shipped preset "taichi" must still be found, and the folder read as the root
    return ["prepare", "taichi", "taichi", "--out", "data/taichi", "-q"], "taichi: no train/ folder"


@case
def prepare_h36m_with_a_folder_named_h36m(env: Env, cwd: Path):
    (cwd / "h36m").mkdir()
    return ["prepare", "h36m", "h36m", "--preset", "h36m", "-q"], "h36m"


@case
def prepare_synthetic_out_is_a_file_with_a_folder_named_synthetic_cpu(env: Env, cwd: Path):
    (cwd / "synthetic-cpu").mkdir()
    _notes(cwd)
    return ["prepare", "synthetic", "--preset", "synthetic-cpu", "--out", "notes.txt", "-q"], "notes.txt"


@case
def prepare_synthetic_out_inside_a_file(env: Env, cwd: Path):
    _notes(cwd)
    return ["prepare", "synthetic", "--out", "notes.txt/ds", "--size", SIZE, "--n-train", 4, "-q"], "notes.txt"


@case
def prepare_synthetic_into_a_folder_that_holds_something_else(env: Env, cwd: Path):
    _png(cwd / "photos" / "holiday.png")
    return ["prepare", "synthetic", "--out", "photos", "--size", SIZE, "--n-train", 4, "-q"], "photos is not empty"


@case
def prepare_folder_out_inside_a_file(env: Env, cwd: Path):
    _notes(cwd)
    return ["prepare", "folder", env.root / "frames", "--out", "notes.txt/ds", "-q"], "notes.txt"


@case
def prepare_folder_empty(env: Env, cwd: Path):
    (cwd / "empty").mkdir()
    return ["prepare", "folder", "empty", "--out", "data/empty", "-q"], "empty: no images or videos"


@case
def prepare_folder_corrupt_image(env: Env, cwd: Path):
    _png(cwd / "photos" / "a.png")
    (cwd / "photos" / "b.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 64)
    return ["prepare", "folder", "photos", "--out", "data/photos", "-q"], "b.png"


@case
def prepare_folder_truncated_image(env: Env, cwd: Path):
    good = _png(cwd / "photos" / "a.png").read_bytes()
    (cwd / "photos" / "b.png").write_bytes(good[: len(good) // 2])
    return ["prepare", "folder", "photos", "--out", "data/photos", "-q"], "b.png"


@case
def prepare_folder_video_that_is_not_a_video(env: Env, cwd: Path):
    (cwd / "clip.mp4").write_text("this is a text file\n")
    return ["prepare", "folder", "clip.mp4", "--out", "data/clip", "-q"], "clip.mp4"


@case
def prepare_folder_preset_path_is_a_directory(env: Env, cwd: Path):
    (cwd / "presets").mkdir()
    return ["prepare", "folder", env.root / "frames", "--preset", "presets/", "-q"], "presets"


@case
def prepare_folder_preset_name_and_file_both_exist(env: Env, cwd: Path):
    (cwd / "h36m").write_text("[model]\nn_keypoints = 4\n")
    return ["prepare", "folder", env.root / "frames", "--preset", "h36m", "-q"], "./h36m"


@case
def prepare_folder_preset_not_toml(env: Env, cwd: Path):
    (cwd / "mine.toml").write_text("[model\nn_keypoints = 4\n")
    return ["prepare", "folder", env.root / "frames", "--preset", "mine.toml", "-q"], "mine.toml"


@case
def prepare_taichi_into_its_own_download_with_force(env: Env, cwd: Path):
    _taichi_root(cwd / "data" / "taichi")  # the download where the preset's data set goes: --force must not clear it
    return ["prepare", "taichi", "data/taichi", "--preset", "taichi", "--force", "-q"], "is the input folder"


@case
def prepare_taichi_root_is_the_archive(env: Env, cwd: Path):
    (cwd / "taichi.tar.gz").write_bytes(b"\x1f\x8b\x08\x00")
    return ["prepare", "taichi", "taichi.tar.gz", "--out", "data/taichi", "-q"], "taichi.tar.gz: is a file"


@case
def prepare_taichi_ground_truth_is_a_directory(env: Env, cwd: Path):
    _taichi_root(cwd / "raw")
    (cwd / "gt.json").mkdir()
    return ["prepare", "taichi", "raw", "--gt-test", "gt.json", "--out", "data/t", "--size", SIZE, "-q"], "gt.json"


# depth -----------------------------------------------------------------------------------------------------------

def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst)
    return dst


def _grey(path: Path, size: int = SIZE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size), 9, np.uint8)).save(path)
    return path


@case
def depth_import_maps_of_the_wrong_size(env: Env, cwd: Path):
    ds = _copy(env.plain, cwd / "plain")
    for k in range(3):
        _grey(cwd / "maps" / f"{k:03d}.png", size=SIZE // 2)
    return ["depth", ds, "--import", "maps", "-q"], "000.png"


@case
def depth_import_a_map_missing_by_name(env: Env, cwd: Path):
    ds = _copy(env.plain, cwd / "plain")
    (cwd / "maps").mkdir()
    for k in range(2):
        np.save(cwd / "maps" / f"{k:03d}.npy", np.zeros((SIZE, SIZE), np.float32))
    return ["depth", ds, "--import", "maps", "-q"], "002.png"


@case
def depth_import_too_many_maps_for_a_set_without_names(env: Env, cwd: Path):
    ds = _copy(env.plain, cwd / "plain")
    (ds / "train" / "names.json").unlink()  # then the maps are matched one to one in sorted order
    for k in range(4):
        _grey(cwd / "maps" / f"{k:03d}.png")
    return ["depth", ds, "--import", "maps", "-q"], "found 4 depth maps"


@case
def depth_import_corrupt_png(env: Env, cwd: Path):
    ds = _copy(env.plain, cwd / "plain")
    for k in range(3):
        _grey(cwd / "maps" / f"{k:03d}.png")
    (cwd / "maps" / "001.png").write_bytes(b"not a png")
    return ["depth", ds, "--import", "maps", "-q"], "001.png"


@case
def depth_import_png_damaged_after_its_header(env: Env, cwd: Path):
    ds = _copy(env.plain, cwd / "plain")
    noise = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE), dtype=np.uint8)
    for k in range(3):
        Image.fromarray(noise).save(_grey(cwd / "maps" / f"{k:03d}.png"))
    data = (cwd / "maps" / "002.png").read_bytes()
    (cwd / "maps" / "002.png").write_bytes(data[: len(data) // 2])  # the header parses; half the pixels are gone
    return ["depth", ds, "--import", "maps", "-q"], "002.png"


@case
def depth_import_from_a_file(env: Env, cwd: Path):
    (cwd / "maps.zip").write_bytes(b"PK\x03\x04")
    return ["depth", env.plain, "--import", "maps.zip", "-q"], "maps.zip"


@case
def depth_model_id_shadowed_by_a_folder(env: Env, cwd: Path):
    (cwd / "Intel" / "dpt-swinv2-tiny-256").mkdir(parents=True)  # not a model: the hub id must still be meant
    return ["depth", env.plain, "--model", "Intel/dpt-swinv2-tiny-256", "-q"], "not in the Hugging Face cache"


@case
def depth_device_cuda_without_a_gpu(env: Env, cwd: Path):
    model = cwd / "tiny-dpt"
    model.mkdir()
    (model / "config.json").write_text("{}")
    return ["depth", env.plain, "--model", model, "--device", "cuda", "-q"], "cuda"


@case
def depth_data_set_of_a_newer_format(env: Env, cwd: Path):
    ds = _copy(env.plain, cwd / "plain")
    manifest = json.loads((ds / "dataset.json").read_text())
    (ds / "dataset.json").write_text(json.dumps({**manifest, "format_version": 99, "dkp_version": "99.0"}))
    return ["depth", ds, "--import", env.root / "frames", "-q"], "newer dkp"


@case
def depth_of_a_file_not_a_data_set(env: Env, cwd: Path):
    _notes(cwd)
    return ["depth", "notes.txt", "-q"], "notes.txt"


# train -----------------------------------------------------------------------------------------------------------

@case
def train_with_a_folder_named_h36m(env: Env, cwd: Path):
    (cwd / "h36m").mkdir()  # the shipped preset is used: its data set data/h36m is what is missing
    return ["train", "--preset", "h36m", "--run", "runs/h", "-q"], "data/h36m"


@case
def train_unknown_set_key(env: Env, cwd: Path):
    return ["train", *_sets(env.ds), "--set", "train.iteration=3", "--run", "runs/x", "-q"], "train.iteration"


@case
def train_set_value_of_the_wrong_type(env: Env, cwd: Path):
    return ["train", *_sets(env.ds), "--set", "train.batch_size=four", "--run", "runs/x", "-q"], "train.batch_size"


@case
def train_teacher_on_a_data_set_without_depth(env: Env, cwd: Path):
    return ["train", "--teacher", "depth", *_sets(env.nodepth), "--run", "runs/t", "-q"], "no depth cache"


@case
def train_unknown_backbone(env: Env, cwd: Path):
    return (["train", *_sets(env.ds), "--set", 'model.backbone="resnet"', "--run", "runs/x", "-q"],
            "model.backbone must be one of")


def _lite0(env: Env, weights: Path) -> list[str]:
    return ["train", *_sets(env.ds, kd__gamma=0), "--set", 'model.backbone="efficientnet_lite0"',
            "--set", f'model.backbone_weights="{weights}"', "--run", "runs/x", "-q"]


@case
def train_backbone_weights_missing(env: Env, cwd: Path):
    return _lite0(env, cwd / "nowhere.pth"), "nowhere.pth does not exist"


@case
def train_backbone_weights_damaged(env: Env, cwd: Path):
    """A byte flipped in the packaged file, under its own (hash-carrying) name."""
    from dkp_tui.model.imagenet import FILE_NAME, default_weights_path

    data = bytearray(default_weights_path().read_bytes())
    data[len(data) // 2] ^= 0xFF
    (cwd / FILE_NAME).write_bytes(bytes(data))
    return _lite0(env, cwd / FILE_NAME), "damaged"


@case
def train_backbone_weights_truncated(env: Env, cwd: Path):
    from dkp_tui.model.imagenet import default_weights_path

    data = default_weights_path().read_bytes()
    (cwd / "lite0.pth").write_bytes(data[: len(data) // 3])
    return _lite0(env, cwd / "lite0.pth"), "lite0.pth: damaged or not a torch weights file"


@case
def train_backbone_weights_of_another_network(env: Env, cwd: Path):
    torch.save(torch.nn.Conv2d(3, 8, 3).state_dict(), cwd / "resnet.pth")
    return _lite0(env, cwd / "resnet.pth"), "not the EfficientNet-Lite0 ImageNet weights"


@case
def train_hidden_kd_layer_with_a_pretrained_backbone(env: Env, cwd: Path):
    return (["train", *_sets(env.ds, kd__layer='"mid"'), "--set", 'model.backbone="efficientnet_lite0"',
             "--teacher-run", env.teacher, "--run", "runs/s", "-q"], "kd.layer=mid")


@case
def train_student_run_passed_as_teacher(env: Env, cwd: Path):
    return ["train", *_sets(env.ds), "--teacher-run", env.student, "--run", "runs/s", "-q"], "not a depth teacher"


@case
def train_teacher_of_another_k(env: Env, cwd: Path):
    return (["train", *_sets(env.ds, model__n_keypoints=4), "--teacher-run", env.teacher, "--run", "runs/s", "-q"],
            "K=8")


@case
def train_teacher_of_another_size(env: Env, cwd: Path):
    return (["train", *_sets(env.ds, model__image_size=2 * SIZE), "--teacher-run", env.teacher, "--run", "runs/s",
             "-q"], "image size")


@case
def train_truncated_teacher_weights(env: Env, cwd: Path):
    return (["train", *_sets(env.ds), "--teacher-run", env.truncated, "--run", "runs/s", "-q"],
            "truncated.safetensors")


@case
def train_resume_a_run_of_a_newer_format(env: Env, cwd: Path):
    return ["train", "--resume", env.newer, "-q"], "newer dkp"


@case
def train_resume_with_a_truncated_checkpoint(env: Env, cwd: Path):
    run = _copy(env.student, cwd / "student")
    for state in (run / "checkpoint").glob("state-*.safetensors"):
        state.write_bytes(state.read_bytes()[:100])
    return ["train", "--resume", run, "--iterations", 3, "-q"], "corrupt checkpoint"


@case
def train_run_is_a_folder_that_holds_something_else(env: Env, cwd: Path):
    _copy(env.plain, cwd / "data")  # `--run data` would scatter the run's files among the data set's
    return ["train", *_sets(env.ds), "--run", "data", "-q"], "--run data is not empty"


@case
def train_device_cuda_without_a_gpu(env: Env, cwd: Path):
    return ["train", *_sets(env.ds), "--device", "cuda", "--run", "runs/s", "-q"], "cuda"


@case
def train_run_inside_a_file(env: Env, cwd: Path):
    _notes(cwd)
    return ["train", *_sets(env.ds), "--run", "notes.txt/run", "-q"], "notes.txt"


@case
def train_perceptual_weights_is_a_directory(env: Env, cwd: Path):
    (cwd / "weights").mkdir()
    return (["train", *_sets(env.ds, loss__reconstruction='"vgg16"'), "--perceptual-weights", "weights",
             "--run", "runs/s", "-q"], "weights")


# eval ------------------------------------------------------------------------------------------------------------

@case
def eval_runs_with_a_folder_named_deepfashion(env: Env, cwd: Path):
    (cwd / "deepfashion").mkdir()
    return ["eval", "--runs", 1, "--preset", "deepfashion", "--out", "runs/e", "-q"], "data/deepfashion"


@case
def eval_runs_with_a_folder_named_synthetic_cpu_long(env: Env, cwd: Path):
    (cwd / "synthetic-cpu-long").mkdir()  # the preset's data set (data/synthetic-cpu) is missing, not the preset
    return ["eval", "--runs", 3, "--compare", "--preset", "synthetic-cpu-long", "--out", "runs/e", "-q"], \
        "data/synthetic-cpu"


@case
def eval_truncated_safetensors(env: Env, cwd: Path):
    return ["eval", env.truncated, "-q"], "truncated.safetensors"


@case
def eval_run_of_a_newer_format(env: Env, cwd: Path):
    return ["eval", env.newer, "-q"], "newer dkp"


@case
def eval_teacher_on_a_data_set_without_depth(env: Env, cwd: Path):
    return ["eval", env.teacher, "--data", env.nodepth, "-q"], "no depth cache"


@case
def eval_unknown_set_key(env: Env, cwd: Path):
    return ["eval", env.student, "--set", "eval.protocl=synthetic", "-q"], "eval.protocl"


@case
def eval_device_cuda_without_a_gpu(env: Env, cwd: Path):
    return ["eval", env.student, "--device", "cuda", "-q"], "cuda"


# infer -----------------------------------------------------------------------------------------------------------

@case
def infer_corrupt_image(env: Env, cwd: Path):
    (cwd / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0" + b"\0" * 32)
    return ["infer", env.student, "photo.jpg", "-q"], "photo.jpg"


@case
def infer_video_that_is_not_a_video(env: Env, cwd: Path):
    (cwd / "dance.mp4").write_text("this is a text file\n")
    return ["infer", env.student, "dance.mp4", "-q"], "dance.mp4"


@case
def infer_empty_folder(env: Env, cwd: Path):
    (cwd / "frames").mkdir()
    return ["infer", env.student, "frames", "-q"], "frames"


@case
def infer_truncated_safetensors(env: Env, cwd: Path):
    return ["infer", env.truncated, env.root / "frames", "-q"], "truncated.safetensors"


@case
def infer_out_is_a_directory(env: Env, cwd: Path):
    (cwd / "results").mkdir()
    return ["infer", env.student, env.root / "frames", "--out", "results", "-q"], "results"


@case
def infer_out_inside_a_file(env: Env, cwd: Path):
    _notes(cwd)
    return ["infer", env.student, env.root / "frames", "--out", "notes.txt/kp.json", "-q"], "notes.txt"


@case
def infer_overlay_folder_is_a_file(env: Env, cwd: Path):
    (cwd / "overlays").write_text("not a folder\n")
    return ["infer", env.student, env.root / "frames", "--overlay", "overlays", "-q"], "overlays"


# sweep -----------------------------------------------------------------------------------------------------------

@case
def sweep_with_a_folder_named_synthetic(env: Env, cwd: Path):
    (cwd / "synthetic").mkdir()
    return ["sweep", "--preset", "synthetic", "--gamma", "0.1", "--kd-layer", "output", "--out", "runs/s", "-q"], \
        "data/synthetic"


@case
def sweep_student_run_passed_as_teacher(env: Env, cwd: Path):
    return (["sweep", "--preset", "synthetic-cpu", *_sets(env.ds), "--gamma", "0.1", "--kd-layer", "output",
             "--teacher-run", env.student, "--out", "runs/s", "-q"], "finished depth teacher")


@case
def sweep_out_inside_a_file(env: Env, cwd: Path):
    _notes(cwd)
    return (["sweep", "--preset", "synthetic-cpu", *_sets(env.ds), "--gamma", "0.1", "--kd-layer", "output",
             "--out", "notes.txt/sweep", "-q"], "notes.txt")


# prepare folder --labels, eval on your own labels, joints (issue 24) ---------------------------------------------

def _labelled(cwd: Path, n: int = 4) -> Path:
    """n 32 px PNGs in cwd/shots/, f0.png ... (labels are written by each case)."""
    for k in range(n):
        _png(cwd / "shots" / f"f{k}.png", value=30 * k)
    return cwd / "shots"


def _coco(cwd: Path, names: list[str], n_joints: list[int] | None = None, name: str = "coco.json") -> Path:
    images = [{"id": k, "file_name": f} for k, f in enumerate(names)]
    anns = [{"image_id": k, "keypoints": [10.0, 12.0, 2] * (n_joints[k] if n_joints else 2)}
            for k in range(len(names))]
    doc = {"images": images, "annotations": anns, "categories": [{"keypoints": ["a", "b"], "skeleton": [[1, 2]]}]}
    (cwd / name).write_text(json.dumps(doc))
    return cwd / name


def _dlc(cwd: Path, rows: list[list[str]], individuals: bool = False) -> Path:
    head = ["scorer,me,me,me,me"] + (["individuals,m1,m1,m1,m1"] if individuals else []) + \
        ["bodyparts,a,a,b,b", "coords,x,y,x,y"]
    (cwd / "CollectedData_me.csv").write_text("\n".join(head + [",".join(r) for r in rows]) + "\n")
    return cwd / "CollectedData_me.csv"


def _fold(src: str, labels: Path | str, *extra: object) -> list[object]:
    return ["prepare", "folder", src, "--labels", labels, "--out", "data/own", "--size", SIZE, "-q", *extra]


@case
def prepare_folder_labels_name_an_image_not_in_the_folder(env: Env, cwd: Path):
    _labelled(cwd)
    return _fold("shots", _coco(cwd, ["f0.png", "f1.png", "f2.png", "zzz.png"])), "'zzz.png': no such image"


@case
def prepare_folder_labels_coco_duplicate_image(env: Env, cwd: Path):
    _labelled(cwd)
    return _fold("shots", _coco(cwd, ["f0.png", "f1.png", "f2.png", "f1.png"])), "'f1.png': duplicate image"


@case
def prepare_folder_labels_dlc_duplicate_image(env: Env, cwd: Path):
    _labelled(cwd)
    rows = [[f"labeled-data/shots/f{k}.png", "1", "2", "3", "4"] for k in (0, 1, 2, 1)]
    return _fold("shots", _dlc(cwd, rows)), "row 7 (labeled-data/shots/f1.png): duplicate image"


@case
def prepare_folder_labels_two_names_for_one_image(env: Env, cwd: Path):
    _labelled(cwd)
    (cwd / "plain.csv").write_text("image,joint,x,y\nf0.png,a,1,2\nf1.png,a,1,2\nf2.png,a,1,2\nf3.png,a,1,2\n"
                                   "shots/f0.png,b,3,4\n")
    return _fold("shots", cwd / "plain.csv"), "'shots/f0.png': duplicate image"


@case
def prepare_folder_labels_coco_joint_count_differs(env: Env, cwd: Path):
    _labelled(cwd)
    return _fold("shots", _coco(cwd, ["f0.png", "f1.png", "f2.png", "f3.png"], [2, 2, 3, 2])), \
        "annotations[2] (f2.png): 3 joints, but categories[0] names 2"


@case
def prepare_folder_labels_dlc_joint_count_differs(env: Env, cwd: Path):
    _labelled(cwd)
    rows = [[f"f{k}.png", "1", "2", "3", "4"] for k in range(4)]
    rows[1] += ["5", "6"]
    return _fold("shots", _dlc(cwd, rows)), "row 5 (f1.png): 3 joints, but the header names 2"


@case
def prepare_folder_labels_dlc_multi_animal(env: Env, cwd: Path):
    _labelled(cwd)
    return _fold("shots", _dlc(cwd, [[f"f{k}.png", "1", "2", "3", "4"] for k in range(4)], individuals=True)), \
        "multi-animal"


@case
def prepare_folder_labels_fewer_than_two_per_split(env: Env, cwd: Path):
    _labelled(cwd)
    return _fold("shots", _coco(cwd, ["f0.png", "f1.png", "f2.png"])), "coco.json: 3 labelled frames in 3 files"


@case
def prepare_folder_labels_in_an_unknown_format(env: Env, cwd: Path):
    _labelled(cwd)
    (cwd / "labels.txt").write_text("f0.png 1 2\n")
    return _fold("shots", cwd / "labels.txt"), "--label-format"


@case
def prepare_folder_labels_file_missing(env: Env, cwd: Path):
    _labelled(cwd)
    return _fold("shots", "nolabels.json"), "nolabels.json: no such label file"


@case
def prepare_folder_labels_coco_skeleton_out_of_range(env: Env, cwd: Path):
    _labelled(cwd)
    path = _coco(cwd, ["f0.png", "f1.png", "f2.png", "f3.png"])
    doc = json.loads(path.read_text())
    doc["categories"][0]["skeleton"] = [[1, 3]]
    path.write_text(json.dumps(doc))
    return _fold("shots", path), "categories[0].skeleton[0]"


@case
def eval_on_a_folder_set_without_labels(env: Env, cwd: Path):
    return ["eval", env.student, "--data", env.plain, "-q"], "folder set without labels"


@case
def eval_shots_not_counts(env: Env, cwd: Path):
    return ["eval", env.student, "--shots", "5,many", "-q"], "--shots"


@case
def eval_pck_out_of_range(env: Env, cwd: Path):
    return ["eval", env.student, "--pck", "2", "-q"], "eval.pck"


@case
def joints_fit_out_not_safetensors(env: Env, cwd: Path):
    return ["joints", "fit", env.student, "--data", env.ds, "--out", "joints.json"], "--out joints.json"


def _joints_file(cwd: Path, k: int, size: int) -> Path:
    from dkp_tui.formats.joint_map import JointMap, save_map

    path = cwd / "other.safetensors"
    save_map(path, JointMap(np.zeros((2 * k, 4)), np.zeros(4), ["a", "b"], [(0, 1)], size))
    return path


@case
def infer_joints_file_for_another_model(env: Env, cwd: Path):
    _png(cwd / "photo.png")
    return ["infer", env.student, "photo.png", "--joints", _joints_file(cwd, 3, SIZE), "-q"], "made for K=3"


@case
def infer_joints_file_for_another_image_size(env: Env, cwd: Path):
    _png(cwd / "photo.png")
    return ["infer", env.student, "photo.png", "--joints", _joints_file(cwd, 8, 64), "-q"], "at 64 px"


@case
def infer_joints_file_that_is_not_one(env: Env, cwd: Path):
    _png(cwd / "photo.png")
    return ["infer", env.student, "photo.png", "--joints", env.student / "model.safetensors", "-q"], \
        "not a joints file"


# watch -----------------------------------------------------------------------------------------------------------

@case
def watch_missing_path(env: Env, cwd: Path):
    return ["watch", "runs/nope", "--once"], "runs/nope"


@case
def watch_a_file(env: Env, cwd: Path):
    _notes(cwd)
    return ["watch", "notes.txt", "--once"], "notes.txt"


@case
def watch_json_without_once(env: Env, cwd: Path):
    return ["watch", env.student, "--json"], "--once"


# bench -----------------------------------------------------------------------------------------------------------

@case
def bench_unknown_set_key_with_a_folder_named_synthetic_cpu(env: Env, cwd: Path):
    (cwd / "synthetic-cpu").mkdir()
    return ["bench", "--preset", "synthetic-cpu", "--set", "train.bogus=1", "--quick"], "train.bogus"


@case
def bench_set_value_of_the_wrong_type(env: Env, cwd: Path):
    return ["bench", "--set", "model.image_size=big", "--quick"], "model.image_size"


@case
def bench_device_cuda_without_a_gpu(env: Env, cwd: Path):
    return ["bench", "--device", "cuda", "--quick"], "cuda"


# -- the one test --------------------------------------------------------------------------------------------------

def _tree(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file under the roots with its size and mtime (a changed or added file shows up)."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for root in roots for p in sorted(root.rglob("*"))
            if p.is_file()}


def test_prepare_taichi_from_a_folder_named_taichi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The issue's transcript: the download in ./taichi, `dkp prepare taichi taichi --out data/taichi`."""
    _taichi_root(tmp_path / "taichi")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["prepare", "taichi", "taichi", "--out", "data/taichi", "--json"])
    assert result.exit_code == 0, result.output
    manifest = json.loads(result.stdout)["manifest"]
    assert manifest["kind"] == "taichi" and manifest["image_size"] == 128  # the shipped preset's model.image_size
    assert {k: v["count"] for k, v in manifest["splits"].items()} == {"train": 2, "fit": 1, "test": 1}
    assert (tmp_path / "data" / "taichi" / "dataset.json").is_file()


def test_every_shipped_preset_has_a_folder_case():
    """A folder named like each shipped preset sits in the working directory of at least one case."""
    for preset in preset_names():
        assert any(name.endswith(f"_with_a_folder_named_{preset.replace('-', '_')}") for name in CASES), preset


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input(name: str, env: Env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cwd = tmp_path / "work"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty Hugging Face cache, and offline (conftest)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    argv, mention = CASES[name](env, cwd)
    before = _tree(cwd, env.root)

    result = runner.invoke(app, [str(a) for a in argv])

    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit) and "Traceback" not in result.output, result.output
    assert len(lines) == 1 and lines[0].startswith("dkp: error: "), result.stderr
    assert mention in lines[0], lines[0]
    assert result.stdout == ""
    after = _tree(cwd, env.root)
    assert {k: v for k, v in after.items() if before.get(k) != v} == {}, "files written or changed"
