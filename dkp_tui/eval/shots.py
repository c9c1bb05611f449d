"""`dkp eval RUN --shots 5,10,20,all`: how many labelled frames the named-joints regression needs.

The run is detected once on the fit and test splits (`evaluate.evaluate_with_splits`, which also records the
full evaluation); then for each shot count the regression is fitted on seeded random draws of that many fit
frames and scored on the whole test split, beside the mean pose of the same drawn frames (so the reference gets
exactly the labels the model got). Scores are the folder protocol's, on any labelled set: error in original
pixels, ×100 of the frame size, PCK.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from dkp_tui.errors import DkpError
from dkp_tui.eval import joints
from dkp_tui.eval.evaluate import EvalRequest, evaluate_with_splits
from dkp_tui.eval.protocols import visible_joints

DEFAULT_DRAWS = 10
FIGURE = "shots.png"


def run_shots(req: EvalRequest, shots: list[int | None], draws: int = DEFAULT_DRAWS, seed: int = 0,
              figure: Path | None = None) -> dict[str, Any]:
    """The shots curve of one run: {record, rows, figure}; ``figure`` (PNG) defaults to ``RUN/shots.png``."""
    if draws < 2:
        raise DkpError(f"--draws {draws}: at least 2 draws per shot count (a std needs two)")
    # the folder protocol's regression and scores on any labelled set (synthetic: pixels of the stored frame)
    req = EvalRequest(req.run, req.data, ['eval.protocol="folder"', *req.overrides], req.device, req.batch_size)
    record, fit, test = evaluate_with_splits(req)
    if fit.keypoints is None or test.keypoints is None:
        raise DkpError("the shots curve needs detections on the fit and test splits")
    size = float(test.label_scale)
    n = len(test.gt)
    geo = test.geometry if test.geometry is not None else np.tile([0.0, 0.0, size, size], (n, 1))
    pck = float((record.get("options") or {}).get("pck", joints.DEFAULT_PCK))
    rows = joints.shots_curve(fit.keypoints, np.asarray(fit.gt) * (size / fit.label_scale), visible_joints(fit),
                              test.keypoints, test.gt, visible_joints(test), geo, int(round(size)), shots, draws,
                              seed, pck)
    run = Path(req.run)
    out = figure if figure is not None else (run if run.is_dir() else run.parent) / FIGURE
    from dkp_tui.viz import save_png

    save_png(str(out), chart(rows, f"{run.name} ({record.get('role')}): labels needed", pck))
    return {"run": str(run), "dataset": record["dataset"], "role": record.get("role"), "input": record.get("input"),
            "pck": pck, "draws": draws, "seed": seed, "n_fit": len(fit.gt), "n_test": n, "rows": rows,
            "figure": str(out), "record": record}


def chart(rows: list[dict[str, Any]], title: str, pck: float) -> np.ndarray:
    from dkp_tui.charts import seed_plot

    steps = list(range(len(rows)))
    series = [("model", steps, [r["model"]["l2x100"]["mean"] for r in rows]),
              ("mean pose of the same frames", steps, [r["mean_pose"]["l2x100"]["mean"] for r in rows])]
    ticks = [f"{r['shots']}" if r["shots"] != "all" else f"all ({r['n']})" for r in rows]
    return seed_plot(series, title, "error x100 of frame size (lower is better)", xlabel="labelled fit frames",
                     tick_labels=ticks)


def table(result: dict[str, Any]) -> Any:
    from rich.table import Table

    t = Table(title=f"dkp eval {result['run']} --shots ({result['role']}, {result['input']} input; test "
              f"{result['n_test']} frames; mean ± std over {result['draws']} draws)", title_justify="left")
    for col in ("fit frames", "error px ↓", "error ×100 ↓", f"PCK@{result['pck']:g} % ↑", "mean pose px",
                "mean pose ×100", "mean pose PCK", "skill ↑"):
        t.add_column(col, justify="right")
    for r in result["rows"]:
        m, p = r["model"], r["mean_pose"]
        sk = joints_skill(m["l2x100"]["mean"], p["l2x100"]["mean"])
        t.add_row(str(r["shots"]) + ("" if r["shots"] != "all" else f" ({r['n']})"),
                  *(f"{d[k]['mean']:.2f} ± {d[k]['std']:.2f}" for d in (m,) for k in ("px", "l2x100", "pck")),
                  *(f"{d[k]['mean']:.2f}" for d in (p,) for k in ("px", "l2x100", "pck")),
                  "–" if sk is None else f"{sk:+.3f}")
    return t


def joints_skill(value: float, reference: float) -> float | None:
    from dkp_tui.eval.protocols import skill

    return skill(value, reference, False)
