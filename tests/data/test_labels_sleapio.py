"""Labels in through sleap-io: a synthetic labelled set round-trips through SLEAP .slp, Label Studio, NWB and
Ultralytics YOLO pose, and `dkp prepare folder --labels x.slp` stores what the COCO import stores."""

from __future__ import annotations

import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from labels_testing import Exported, export_labelled, write_coco
from typer.testing import CliRunner

from dkp_tui.cli import app
from dkp_tui.data import labels as lb
from dkp_tui.errors import DkpError
from dkp_tui.formats.dataset_dir import open_split

runner = CliRunner()


@pytest.fixture(scope="module")
def sio():
    return pytest.importorskip("sleap_io", reason="the labels extra (part of [dev]) is not installed")


@pytest.fixture(scope="module")
def exported(tiny_dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Exported:
    return export_labelled(tiny_dataset, tmp_path_factory.mktemp("sleapio") / "frames", n_per_split=6)


def _labels(sio, ex: Exported, video, frames: list[int] | None = None, frame_index=None):
    """The exported labels as sleap-io Labels on ``video`` (frame k of the export at frame_index(k))."""
    skeleton = sio.Skeleton(nodes=list(ex.joint_names), edges=[(ex.joint_names[a], ex.joint_names[b])
                                                               for a, b in ex.skeleton])
    out = []
    for k in frames if frames is not None else range(len(ex.names)):
        points = np.where(ex.present[k][:, None], ex.xy[k], np.nan)
        out.append(sio.LabeledFrame(video=video, frame_idx=frame_index(k) if frame_index else k,
                                    instances=[sio.Instance.from_numpy(points, skeleton=skeleton)]))
    return sio.Labels(labeled_frames=out, videos=[video], skeletons=[skeleton])


def _image_sequence(sio, ex: Exported):
    return sio.Video.from_filename([str(ex.folder / n) for n in ex.names])


def _check_same(ex: Exported, got: lb.LabelSet, key=lambda name: Path(name).name, atol: float = 1e-6,
                edges: bool = True) -> None:
    """Every exported frame comes back with its labels, joint by name, to ``atol`` px; missing stays missing; the
    skeleton too where the format holds one."""
    assert sorted(got.joint_names) == sorted(ex.joint_names)
    order = [got.joint_names.index(n) for n in ex.joint_names]
    assert {key(n) for n in got.xy} == set(ex.names)
    for name in got.xy:
        k = ex.names.index(key(name))
        np.testing.assert_array_equal(got.present[name][order], ex.present[k])
        np.testing.assert_allclose(got.xy[name][order][ex.present[k]], ex.xy[k][ex.present[k]], atol=atol, rtol=0)
    got_edges = {frozenset((got.joint_names[a], got.joint_names[b])) for a, b in got.skeleton}
    assert got_edges == ({frozenset((ex.joint_names[a], ex.joint_names[b])) for a, b in ex.skeleton} if edges else set())


@pytest.mark.parametrize("fmt, name", [("slp", "labels.slp"), ("labelstudio", "labelstudio.json")])
def test_image_labels_round_trip(sio, exported: Exported, tmp_path: Path, fmt: str, name: str):
    path = tmp_path / name
    sio.save_file(_labels(sio, exported, _image_sequence(sio, exported)), str(path), format=fmt)
    got = lb.read_labels(path)  # found by name (.slp) or content (a JSON list of tasks)
    assert got.format == fmt
    _check_same(exported, got, edges=fmt != "labelstudio")  # Label Studio's export holds no skeleton


def test_video_labels_round_trip_through_nwb(sio, exported: Exported, tmp_path: Path):
    """NWB keeps labels of video frames: they come back named clip.mp4#<frame>, as the data-set layout names them."""
    wide = [k for k in range(len(exported.names)) if k % 2 == 0]  # the 64 x 80 frames make one clip
    clip = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10, (80, 64))
    for k in wide:
        writer.write(cv2.imread(str(exported.folder / exported.names[k])))
    writer.release()
    labels = _labels(sio, exported, sio.Video.from_filename(str(clip)), wide, frame_index=lambda k: k // 2)
    sio.save_file(labels, str(tmp_path / "labels.nwb"), format="nwb")
    got = lb.read_labels(tmp_path / "labels.nwb")
    assert got.format == "nwb" and all(n.startswith(str(clip) + "#") for n in got.xy)
    sub = Exported(exported.folder, [exported.names[k] for k in wide], [], exported.xy[wide],
                   exported.present[wide], exported.joint_names, exported.skeleton)
    _check_same(sub, got, key=lambda n: exported.names[2 * int(n.rpartition("#")[2])])


def test_ultralytics_pose_data_set_round_trips(sio, exported: Exported, tmp_path: Path):
    """YOLO writes its own image copies and split folders; every split is read, coordinates to float32 precision."""
    yolo = tmp_path / "yolo"
    sio.save_file(_labels(sio, exported, _image_sequence(sio, exported)), str(yolo), format="ultralytics")
    for path in (yolo, yolo / "data.yaml"):
        got = lb.read_labels(path)
        assert got.format == "ultralytics" and len(got.xy) == len(exported.names)
        # YOLO renames the images: pair each frame with the exported frame whose labels it carries
        order = [got.joint_names.index(n) for n in exported.joint_names]
        matched = set()
        for name, xy in got.xy.items():
            assert Path(name).is_relative_to(yolo)
            errors = [np.abs(xy[order] - exported.xy[k])[exported.present[k]].max() for k in range(len(exported.names))]
            k = int(np.argmin(errors))
            assert errors[k] < 1e-3 and k not in matched
            np.testing.assert_array_equal(got.present[name][order], exported.present[k])
            matched.add(k)


def test_prepare_folder_from_slp_stores_what_the_coco_import_stores(sio, exported: Exported, tmp_path: Path):
    slp = tmp_path / "labels.slp"
    sio.save_file(_labels(sio, exported, _image_sequence(sio, exported)), str(slp), format="slp")
    sets = {}
    for fmt, path in (("coco", write_coco(exported, tmp_path / "coco.json")), ("slp", slp)):
        sets[fmt] = tmp_path / f"ds-{fmt}"
        result = runner.invoke(app, ["prepare", "folder", str(exported.folder), "--labels", str(path), "--out",
                                     str(sets[fmt]), "--size", "64", "-q"])
        assert result.exit_code == 0, result.output
    for split in ("fit", "test"):
        coco, slp_split = (open_split(sets[f], split) for f in ("coco", "slp"))
        assert coco.names == slp_split.names
        np.testing.assert_array_equal(coco.visible, slp_split.visible)
        np.testing.assert_allclose(slp_split.keypoints, coco.keypoints, atol=1e-5, rtol=0)


def test_predictions_are_not_labels_and_two_people_are_refused(sio, exported: Exported, tmp_path: Path):
    labels = _labels(sio, exported, _image_sequence(sio, exported), frames=[0, 1, 2])
    skeleton = labels.skeletons[0]
    points = np.where(exported.present[3][:, None], exported.xy[3], np.nan)
    labels.append(sio.LabeledFrame(video=labels.videos[0], frame_idx=3, instances=[
        sio.PredictedInstance.from_numpy(points, skeleton=skeleton, point_scores=np.ones(len(points)), score=1.0)]))
    sio.save_file(labels, str(tmp_path / "mixed.slp"), format="slp")
    got = lb.read_labels(tmp_path / "mixed.slp")
    assert sorted(Path(n).name for n in got.xy) == sorted(exported.names[:3])
    labels.labeled_frames[0].instances.append(sio.Instance.from_numpy(points, skeleton=skeleton))
    sio.save_file(labels, str(tmp_path / "two.slp"), format="slp")
    with pytest.raises(DkpError, match="2 labelled instances; dkp reads one person per frame"):
        lb.read_labels(tmp_path / "two.slp")


def test_a_broken_file_is_one_line_naming_the_format(sio, tmp_path: Path):
    (tmp_path / "broken.slp").write_bytes(b"not hdf5")
    with pytest.raises(DkpError, match=r"broken.slp: sleap-io cannot read it as slp"):
        lb.read_labels(tmp_path / "broken.slp")


def test_without_the_labels_extra_the_error_names_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    (tmp_path / "labels.slp").write_bytes(b"")
    monkeypatch.setitem(sys.modules, "sleap_io", None)  # import sleap_io raises ImportError
    with pytest.raises(DkpError, match=r"\[labels\]"):
        lb.read_labels(tmp_path / "labels.slp")


def test_several_label_files_are_one_set_in_the_first_files_joint_order(sio, exported: Exported, tmp_path: Path):
    """The first labels (COCO) and the frames labelled next (a .slp, joints in another order) prepare as one set;
    a frame in both files is refused."""
    first = write_coco(Exported(exported.folder, exported.names[:6], [], exported.xy[:6], exported.present[:6],
                                exported.joint_names, exported.skeleton), tmp_path / "first.json")
    shuffled = list(reversed(exported.joint_names))
    order = [exported.joint_names.index(n) for n in shuffled]
    later = Exported(exported.folder, exported.names, [], exported.xy[:, order], exported.present[:, order],
                     shuffled, [])
    sio.save_file(_labels(sio, later, _image_sequence(sio, later), frames=list(range(6, len(exported.names)))),
                  str(tmp_path / "next.slp"), format="slp")
    merged = lb.read_label_files([first, tmp_path / "next.slp"])
    assert merged.joint_names == exported.joint_names and len(merged.xy) == len(exported.names)
    _check_same(exported, merged)
    sio.save_file(_labels(sio, later, _image_sequence(sio, later), frames=[5, 6]), str(tmp_path / "again.slp"),
                  format="slp")
    result = runner.invoke(app, ["prepare", "folder", str(exported.folder), "--labels", str(first), "--labels",
                                 str(tmp_path / "again.slp"), "--out", str(tmp_path / "ds"), "--size", "64", "-q"])
    assert result.exit_code == 2 and "img5.png" in result.output and "duplicate" in result.output
    assert not (tmp_path / "ds").exists()
