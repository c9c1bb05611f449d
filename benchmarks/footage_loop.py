"""The "Your own videos" loop measured on the example clips: confidence, temporal filtering, outliers vs random.

Run it in a folder where the README's walk-through ran with every frame's joints kept as the ground truth:

    python docs/examples/labelled_videos.py videos/ labels.json --truth truth.json
    dkp prepare folder videos --labels labels.json --out data/own --fps 10 --size 64
    dkp train --preset synthetic-cpu --set kd.gamma=0 --set data.dataset=data/own --iterations 200 --run runs/own
    python benchmarks/footage_loop.py .            # prints the three tables (markdown) and writes footage_loop.json

1. **Confidence**: `dkp joints fit` on data/own, `dkp infer --joints` on the test clips; every (frame, joint) of
   the test clips by joint-confidence decile, with its error against the true joints.
2. **Filtering**: the same with `--smooth savgol|median|oneeuro`: joint error and jitter (mean |second
   difference|, per clip) on the test clips, raw against filtered.
3. **Outliers vs random**: labels on every 8th frame of the fit clips (and the whole test clips as the test
   split, checked to stay the same), then N more chosen by `dkp outliers --labelled` (those base labels: never
   picked, and the regression-residual term on), by the same with `--no-residual` (confidence and jumps only) or
   at random (``--seeds`` draws); `dkp joints fit`'s test error after each, beside the mean pose
   of the same labels, and its cross-validated error (by clip: ``cv.by``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

METHODS = ("none", "savgol", "median", "oneeuro")


def dkp(*args: object, cwd: Path) -> tuple[str, float]:
    """`dkp ARGS` as this interpreter's ``python -m dkp_tui`` (the `dkp` first on PATH may be another install's:
    pyenv's python puts its own bin first in a child's PATH)."""
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "dkp_tui", *map(str, args)], cwd=cwd, check=True,
                         capture_output=True, text=True, env={**os.environ})
    return out.stdout, time.perf_counter() - t0


def load_truth(path: Path) -> dict[str, np.ndarray]:
    doc = json.loads(path.read_text())
    names = {im["id"]: im["file_name"] for im in doc["images"]}
    return {names[a["image_id"]]: np.array(a["keypoints"], dtype=np.float64).reshape(-1, 3)[:, :2]
            for a in doc["annotations"]}


def subset_coco(truth_doc: dict[str, Any], keep: set[str], out: Path) -> Path:
    ids = {im["id"] for im in truth_doc["images"] if im["file_name"] in keep}
    doc = {**truth_doc, "images": [im for im in truth_doc["images"] if im["id"] in ids],
           "annotations": [a for a in truth_doc["annotations"] if a["image_id"] in ids]}
    out.write_text(json.dumps(doc))
    return out


def joints_xy(js: dict[str, Any]) -> tuple[list[str], np.ndarray, np.ndarray]:
    names = [f"{Path(f['source']).name}#{f['frame']}" for f in js["frames"]]
    xy = np.array([[[np.nan if p["x"] is None else p["x"], np.nan if p["y"] is None else p["y"]]
                    for p in f["joints"]] for f in js["frames"]], dtype=np.float64)
    conf = np.array([[p["confidence"] for p in f["joints"]] for f in js["frames"]])
    return names, xy, conf


def jitter(xy: np.ndarray) -> float:
    second = np.linalg.norm(xy[2:] - 2 * xy[1:-1] + xy[:-2], axis=-1)
    return float(np.nanmean(second))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("work", type=Path)
    ap.add_argument("--n", type=int, default=10, help="labels added by outliers / at random")
    ap.add_argument("--seeds", type=int, default=8, help="random draws")
    ap.add_argument("--ridge", default="auto", help="`dkp joints fit --ridge` for every fit (auto: by clip CV)")
    args = ap.parse_args()
    w = args.work.resolve()
    report = json.loads((w / "data/own/prepare_report.json").read_text())
    test_clips = report["labels"]["test_files"]  # every test clip stays fully labelled: the same test split
    fit_clips = report["labels"]["fit_files"]
    truth = load_truth(w / "truth.json")
    truth_doc = json.loads((w / "truth.json").read_text())
    results: dict[str, Any] = {"test_clips": test_clips, "fit_clips": fit_clips, "times_s": {}}

    # 1 + 2: confidence deciles and filtering, on the test clip with the joints fitted on data/own
    out, t = dkp("joints", "fit", "runs/own", "--data", "data/own", "--out", "own-joints.safetensors", "--json",
                 "--ridge", args.ridge, cwd=w)
    results["times_s"]["joints fit"] = t
    fitted = json.loads(out)
    results["joints"] = {"test_px": fitted["test"]["px"], "test_pck": fitted["test"]["pck"],
                         "mean_pose_px": fitted["mean_pose"]["extras"]["px_error"],
                         "mean_pose_pck": fitted["mean_pose"]["extras"]["pck"], "cv_px": fitted["cv"]["px"],
                         "cv_by": fitted["cv"].get("by", "frame"), "cv_folds": fitted["cv"]["folds"],
                         "n_fit": fitted["n_fit"], "ridge": fitted.get("ridge"), "ridge_cv": fitted.get("ridge_cv")}
    rows = {}
    for method in METHODS:
        out, t = dkp("infer", "runs/own", *[f"videos/{c}" for c in test_clips], "--joints", "own-joints.safetensors",
                     "-q", "--smooth", method, cwd=w)
        results["times_s"][f"infer --smooth {method}"] = t
        names, xy, conf = joints_xy(json.loads(out))
        gt = np.array([truth[n] for n in names])
        err = np.linalg.norm(xy - gt, axis=-1)
        clips = [[i for i, n in enumerate(names) if n.startswith(f"{c}#")] for c in test_clips]
        rows[method] = {"px": float(np.nanmean(err)), "jitter": float(np.mean([jitter(xy[ix]) for ix in clips])),
                        "truth_jitter": float(np.mean([jitter(gt[ix]) for ix in clips]))}
        if method == "none":
            order = np.argsort(conf.ravel())
            deciles = np.array_split(order, 10)
            results["confidence"] = [{"decile": d + 1, "conf_lo": float(conf.ravel()[ix].min()),
                                      "conf_hi": float(conf.ravel()[ix].max()), "px": float(err.ravel()[ix].mean()),
                                      "n": len(ix)} for d, ix in enumerate(deciles)]
            c, e = conf.ravel(), err.ravel()
            rc, re_ = np.argsort(np.argsort(c)), np.argsort(np.argsort(e))
            results["spearman_conf_error"] = float(np.corrcoef(rc, re_)[0, 1])
    results["filtering"] = rows

    # 3: outliers vs random
    every = 8
    base = {n for n in truth if n.split("#")[0] in fit_clips and int(n.split("#")[1]) % every == 0}
    base |= {n for n in truth if n.split("#")[0] in test_clips}
    unlabelled = sorted(n for n in truth if n.split("#")[0] in fit_clips and n not in base)

    fits: dict[str, Any] = {}

    def fit_with(extra: set[str], tag: str) -> float:
        labels = subset_coco(truth_doc, base | extra, w / f"labels-{tag}.json")
        dkp("prepare", "folder", "videos", "--labels", labels, "--out", f"data/loop-{tag}", "--fps", 10, "--size", 64,
            "-q", "--force", cwd=w)
        out, _ = dkp("joints", "fit", "runs/own", "--data", f"data/loop-{tag}", "--out", f"loop-{tag}.safetensors",
                     "--json", "--ridge", args.ridge, cwd=w)
        summary = json.loads(out)
        prepared = json.loads((w / f"data/loop-{tag}/prepare_report.json").read_text())
        assert prepared["labels"]["test_files"] == test_clips, "the test split moved"
        fits[tag] = {"px": summary["test"]["px"], "mean_pose_px": summary["mean_pose"]["extras"]["px_error"],
                     "cv_px": summary["cv"]["px"], "cv_by": summary["cv"].get("by", "frame"),
                     "ridge": summary.get("ridge")}
        return float(summary["test"]["px"])

    loop: dict[str, Any] = {"base_labels": sum(n.split("#")[0] in fit_clips for n in base), "n": args.n}
    loop["base_px"] = fit_with(set(), "base")
    base_fit = subset_coco(truth_doc, {n for n in base if n.split("#")[0] in fit_clips}, w / "labels-base-fit.json")
    for key, extra_args in (("outliers", []), ("outliers_no_residual", ["--no-residual"])):
        out, t = dkp("outliers", "runs/own", *[f"videos/{c}" for c in fit_clips], "--n", args.n, "--min-gap", 3,
                     "--labelled", base_fit, "--out", f"next-{key}", "--json", "-q", *extra_args, cwd=w)
        results["times_s"][key] = t
        job = json.loads(out)
        chosen = [f"{Path(p['source']).name}#{p['frame']}" for p in job["picks"]]
        assert not set(chosen) & base and len(chosen) == args.n
        loop[f"{key}_picked"] = chosen
        loop[f"{key}_px"] = fit_with(set(chosen), key)
        if job.get("review"):
            loop["review"] = job["review"][:5]
    rng = np.random.default_rng(0)
    loop["random_px"] = [fit_with(set(rng.choice(unlabelled, args.n, replace=False).tolist()), f"random{s}")
                         for s in range(args.seeds)]
    loop["fits"] = fits
    results["outliers_vs_random"] = loop
    (w / "footage_loop.json").write_text(json.dumps(results, indent=2))

    js = results["joints"]
    print(f"joints fit on data/own ({js['n_fit']} fit frames): test {js['test_px']:.2f} px (mean pose "
          f"{js['mean_pose_px']:.2f}), PCK {js['test_pck']:.1f} % (mean pose {js['mean_pose_pck']:.1f} %); "
          f"{js['cv_folds']}-fold CV by {js['cv_by']} {js['cv_px']:.2f} px; ridge {js['ridge']} (CV px by ridge: "
          f"{js['ridge_cv']})\n")
    print("| decile | joint confidence | mean error (px) | (frame, joint) pairs |\n|---|---|---|---|")
    for r in results["confidence"]:
        print(f"| {r['decile']} | {r['conf_lo']:.3f}–{r['conf_hi']:.3f} | {r['px']:.2f} | {r['n']} |")
    print(f"\nSpearman rank correlation, confidence vs error: {results['spearman_conf_error']:+.3f}\n")
    print("| --smooth | joint error (px) | jitter (px) |\n|---|---|---|")
    for m, r in rows.items():
        print(f"| {m} | {r['px']:.2f} | {r['jitter']:.2f} |")
    print(f"| (true joints) | 0 | {rows['none']['truth_jitter']:.2f} |\n")
    rnd = np.array(loop["random_px"])
    print(f"base ({loop['base_labels']} fit labels): {loop['base_px']:.2f} px (mean pose "
          f"{fits['base']['mean_pose_px']:.2f}); + {args.n} by outliers --labelled: {loop['outliers_px']:.2f} px; "
          f"+ {args.n} by outliers --no-residual: {loop['outliers_no_residual_px']:.2f} px; + {args.n} at random: "
          f"{rnd.mean():.2f} ± {rnd.std(ddof=1):.2f} px over {len(rnd)} draws ({', '.join(f'{v:.2f}' for v in rnd)})")
    print(json.dumps(results["times_s"]), file=sys.stderr)


if __name__ == "__main__":
    main()
