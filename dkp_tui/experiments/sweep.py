"""`dkp sweep`: the γ × KD-layer grid behind the paper's Fig. 3, resumable, with a table, a PNG and a terminal chart.

Layout under ``--out``::

    <out>/seed{s}/teacher            one depth teacher per seed, shared by the whole grid (unless --teacher-run)
    <out>/seed{s}/{layer}-g{gamma}   one distilled student per grid point
    <out>/seed{s}/student-only       γ = 0, if 0 is in the grid (the layer does not matter there)
    <out>/sweep.json  <out>/sweep.png  (once every job has finished, or from the finished ones with --collect)
    <out>/jobs.json  <out>/logs/  <out>/slurm/   each job's state and log (see experiments/launchers)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from dkp_tui.charts import PALETTE as _COLOURS
from dkp_tui.charts import nice_ticks as _nice_ticks
from dkp_tui.config import KD_LAYERS, OUTPUT_KD_LAYERS, load_config
from dkp_tui.errors import DkpError
from dkp_tui.experiments.jobs import (
    Job,
    TrainFn,
    fmt_mean_std,
    mean_pose_of,
    seed_config,
    skills,
    stats,
)
from dkp_tui.experiments.launchers import LaunchOptions, NoteFn, execute


def parse_floats(text: str, what: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise DkpError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if not values or any(v < 0 or not np.isfinite(v) for v in values):
        raise DkpError(f"{what}: expected finite numbers >= 0, got {text!r}")
    return sorted(set(values))


def parse_layers(text: str) -> list[str]:
    layers = [v.strip() for v in text.split(",") if v.strip()]
    bad = [v for v in layers if v not in KD_LAYERS]
    if bad or not layers:
        raise DkpError(f"--kd-layer: unknown layer(s) {', '.join(bad) or '(none)'}; choose from {', '.join(KD_LAYERS)}")
    return list(dict.fromkeys(layers))


def default_layers(preset: str, overrides: Sequence[str]) -> str:
    """The paper's Fig. 3 layers where the student is the AutoLink detector; the output layers elsewhere (an
    ImageNet student shares only its output with any teacher)."""
    cfg = load_config(preset, [*overrides, "kd.layer=\"output\""])
    return "output,mid,early" if cfg.model.backbone == "autolink" else ",".join(OUTPUT_KD_LAYERS)


def parse_ints(text: str, what: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise DkpError(f"{what}: expected comma-separated integers, got {text!r}") from None
    if not values:
        raise DkpError(f"{what}: empty")
    return list(dict.fromkeys(values))


@dataclass
class SweepPlan:
    jobs: list[Job]
    point_of: dict[str, tuple[str, float]] = field(default_factory=dict)  # run -> (layer or "teacher"/"none", γ)


def plan_sweep(preset: str, gammas: Sequence[float], layers: Sequence[str], seeds: Sequence[int], out: Path,
               overrides: Sequence[str] = (), teacher_run: Path | None = None) -> SweepPlan:
    plan = SweepPlan([])
    if teacher_run is not None:
        from dkp_tui.formats.run_dir import read_run_info

        info = read_run_info(teacher_run)
        if info.role != "teacher" or info.status != "finished":
            raise DkpError(f"--teacher-run {teacher_run}: a finished depth teacher is needed "
                           f"(this is a {info.status} {info.role} run)")
    for seed in seeds:
        d = Path(out) / f"seed{seed}"
        teacher = teacher_run
        if teacher is None:
            job = Job(d / "teacher", seed_config(preset, overrides, seed), "teacher", None, seed, f"seed {seed} teacher")
            plan.jobs.append(job)
            plan.point_of[str(job.run)] = ("teacher", 0.0)
            teacher = job.run
        for gamma in gammas:
            if gamma == 0:
                cfg = seed_config(preset, overrides, seed, ["kd.gamma=0"])
                job = Job(d / "student-only", cfg, "student", None, seed, f"seed {seed} γ=0")
                plan.jobs.append(job)
                plan.point_of[str(job.run)] = ("none", 0.0)
                continue
            for layer in layers:
                cfg = seed_config(preset, overrides, seed, [f"kd.gamma={gamma!r}", f"kd.layer={layer}"])
                job = Job(d / f"{layer}-g{gamma:g}", cfg, "student", Path(teacher), seed,
                          f"seed {seed} {layer} γ={gamma:g}")
                plan.jobs.append(job)
                plan.point_of[str(job.run)] = (layer, gamma)
    return plan


def summarize(plan: SweepPlan, records: Sequence[dict[str, Any]], preset: str, gammas: Sequence[float],
              layers: Sequence[str], seeds: Sequence[int]) -> dict[str, Any]:
    values: dict[tuple[str, float], list[float]] = {}
    for job, record in zip(plan.jobs, records, strict=True):
        values.setdefault(plan.point_of[str(job.run)], []).append(record.get("value"))
    first = next((r for j, r in zip(plan.jobs, records, strict=True) if j.role == "student"), records[0] if records else {})
    higher = bool(first.get("higher_is_better"))
    reference = mean_pose_of(records)
    grid = []
    for layer in layers:
        for gamma in gammas:
            key = ("none", 0.0) if gamma == 0 else (layer, gamma)
            if key in values:
                grid.append({"layer": layer, "gamma": gamma, "values": values[key], **stats(values[key])})
                if reference is not None:
                    grid[-1]["skill_stats"] = stats(skills(values[key], reference, higher))
    scored = [g for g in grid if g["mean"] is not None and g["gamma"] > 0]
    best = (max if higher else min)(scored, key=lambda g: g["mean"]) if scored else None
    best_by_layer = {}
    for layer in layers:
        pts = [g for g in scored if g["layer"] == layer and g["gamma"] > 0]
        if pts:
            b = (max if higher else min)(pts, key=lambda g: g["mean"])
            best_by_layer[layer] = {"gamma": b["gamma"], "mean": b["mean"]}
    out: dict[str, Any] = {
        "preset": preset, "seeds": list(seeds), "gammas": list(gammas), "layers": list(layers),
        "protocol": first.get("protocol"), "metric": first.get("metric"), "label": first.get("label"),
        "higher_is_better": higher, "options": first.get("options"), "grid": grid,
        "best": {"layer": best["layer"], "gamma": best["gamma"], "mean": best["mean"]} if best else None,
        "best_by_layer": best_by_layer, "mean_pose": reference,
    }
    if ("teacher", 0.0) in values:
        out["teacher"] = stats(values[("teacher", 0.0)])
    if ("none", 0.0) in values:
        out["student_only"] = stats(values[("none", 0.0)])
    return out


def run_sweep(preset: str, gammas: Sequence[float], layers: Sequence[str], seeds: Sequence[int], out: Path,
              overrides: Sequence[str] = (), *, teacher_run: Path | None = None, device: str = "auto",
              batch_size: int = 64, progress: bool = True, train_fn: TrainFn | None = None,
              launch: LaunchOptions | None = None, note: NoteFn | None = None) -> dict[str, Any]:
    """Plan the grid, run it with ``launch``'s launcher (default: in this process), summarise and plot."""
    from dkp_tui.atomic import check_output_dir, write_json
    from dkp_tui.viz import save_png

    check_output_dir(out, "--out")
    plan = plan_sweep(preset, gammas, layers, seeds, out, overrides, teacher_run)
    jobs, records = execute(plan.jobs, Path(out), launch or LaunchOptions(), device=device, batch_size=batch_size,
                            progress=progress, train_fn=train_fn, note=note)
    summary = summarize(SweepPlan(jobs, plan.point_of), records, preset, gammas, layers, seeds)
    png = Path(out) / "sweep.png"
    save_png(str(png), plot_png(summary))
    summary["plot"] = str(png)
    write_json(Path(out) / "sweep.json", summary)
    return summary


# -- presentation ------------------------------------------------------------------------------------------------


def table(summary: dict[str, Any]) -> Any:
    from rich.table import Table

    arrow = "↑" if summary.get("higher_is_better") else "↓"
    t = Table(title=f"{summary.get('label')} {arrow} — γ × KD layer, preset {summary.get('preset')}, "
                    f"seeds {','.join(map(str, summary.get('seeds', [])))}", title_justify="left")
    t.add_column("KD layer")
    for gamma in summary["gammas"]:
        t.add_column(f"γ={gamma:g}", justify="right")
    best = summary.get("best") or {}
    cells = {(g["layer"], g["gamma"]): g for g in summary["grid"]}
    for layer in summary["layers"]:
        row = [layer]
        for gamma in summary["gammas"]:
            g = cells.get((layer, gamma))
            text = fmt_mean_std(g) if g else "–"
            if g and best and g["layer"] == best["layer"] and g["gamma"] == best["gamma"]:
                text = f"[bold green]{text}[/]"
            row.append(text)
        t.add_row(*row)
    captions = [f"depth teacher (on depth): {fmt_mean_std(summary['teacher'])}"] if summary.get("teacher") else []
    reference = summary.get("mean_pose") or {}
    if reference.get("value") is not None:
        from dkp_tui.eval.protocols import skill, skill_formula

        text = f"constant mean pose: {reference['value']:.2f}"
        if best.get("mean") is not None:
            best_skill = skill(best["mean"], reference["value"], bool(summary.get("higher_is_better")))
            text += f" (best point's skill {best_skill:.3f}, {skill_formula(bool(summary.get('higher_is_better')))})"
        captions.append(text)
    if captions:
        t.caption = "; ".join(captions)
    return t


def terminal_chart(summary: dict[str, Any], width: int = 40) -> str:
    """A plain-text bar chart (one bar per grid point), readable in any terminal and in logs."""
    pts = [g for g in summary["grid"] if g["mean"] is not None]
    if not pts:
        return "(no scored points)"
    # bars start just below the smallest value (like Fig. 3's axis), so close values stay distinguishable
    vmin, vmax = min(g["mean"] for g in pts), max(g["mean"] for g in pts)
    span = vmax - vmin
    base = vmin - 0.1 * span if span > 0 else 0.0
    top = (vmax - base) or 1.0
    arrow = "higher is better" if summary.get("higher_is_better") else "lower is better"
    lines = [f"{summary.get('metric')} ({arrow}; bars from {base:.4g})"]
    blocks = " ▏▎▍▌▋▊▉█"
    for layer in summary["layers"]:
        for g in sorted((p for p in pts if p["layer"] == layer), key=lambda q: q["gamma"]):
            frac = max(0.0, g["mean"] - base) / top * width
            full, part = int(frac), int((frac - int(frac)) * 8)
            bar = "█" * full + (blocks[part] if part else "")
            lines.append(f"{layer:>8} γ={g['gamma']:<6g} {bar:<{width + 1}} {g['mean']:.3f}")
        lines.append("")
    return "\n".join(lines).rstrip()


def plot_png(summary: dict[str, Any], width: int = 880, height: int = 520) -> np.ndarray:
    """Fig. 3 style line plot (x = γ, y = score, one line per KD layer, ±std bars), drawn with OpenCV."""
    import cv2

    img = np.full((height, width, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    left, right, top, bottom = 80, 190, 50, 60
    x0, x1, y0, y1 = left, width - right, top, height - bottom
    gammas = sorted(summary["gammas"])
    pts = [g for g in summary["grid"] if g["mean"] is not None]
    arrow = "higher is better" if summary.get("higher_is_better") else "lower is better"
    cv2.putText(img, f"{summary.get('metric')} vs gamma ({arrow}), preset {summary.get('preset')}", (x0, 30), font,
                0.55, (0, 0, 0), 1, cv2.LINE_AA)
    if not pts or not gammas:
        cv2.putText(img, "no scored points", (x0, (y0 + y1) // 2), font, 0.7, (0, 0, 0), 1, cv2.LINE_AA)
        return img
    lows = [g["mean"] - (g["std"] or 0) for g in pts]
    highs = [g["mean"] + (g["std"] or 0) for g in pts]
    lo, hi = min(lows), max(highs)
    pad = (hi - lo) * 0.08 or max(abs(hi) * 0.05, 1e-3)
    lo, hi = lo - pad, hi + pad
    teacher = summary.get("teacher") or {}
    t_mean = teacher.get("mean")
    t_in_range = t_mean is not None and lo <= t_mean <= hi  # a far-away teacher would flatten the curves

    def px(i: int) -> int:  # gammas are evenly spaced categories, labelled with their values
        return int(x0 + (i + 0.5) * (x1 - x0) / len(gammas))

    def py(v: float) -> int:
        return int(y1 - (v - lo) / (hi - lo) * (y1 - y0))

    cv2.rectangle(img, (x0, y0), (x1, y1), (0, 0, 0), 1)
    for v in _nice_ticks(lo, hi):
        y = py(v)
        cv2.line(img, (x0, y), (x1, y), (230, 230, 230), 1)
        cv2.line(img, (x0 - 5, y), (x0, y), (0, 0, 0), 1)
        cv2.putText(img, f"{v:.3g}", (8, y + 4), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for i, gamma in enumerate(gammas):
        cv2.line(img, (px(i), y1), (px(i), y1 + 5), (0, 0, 0), 1)
        cv2.putText(img, f"{gamma:g}", (px(i) - 12, y1 + 22), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "gamma", ((x0 + x1) // 2 - 25, height - 15), font, 0.55, (0, 0, 0), 1, cv2.LINE_AA)
    if t_in_range:
        y = py(t_mean)
        for xs in range(x0, x1, 12):
            cv2.line(img, (xs, y), (min(xs + 6, x1), y), (120, 120, 120), 1)
    legend_y = y0 + 10
    for n, layer in enumerate(summary["layers"]):
        colour = _COLOURS[n % len(_COLOURS)]
        line = [(px(gammas.index(g["gamma"])), py(g["mean"]), g)
                for g in sorted(pts, key=lambda q: q["gamma"]) if g["layer"] == layer and g["gamma"] in gammas]
        for (xa, ya, _), (xb, yb, _) in zip(line, line[1:], strict=False):
            cv2.line(img, (xa, ya), (xb, yb), colour, 2, cv2.LINE_AA)
        for xa, ya, g in line:
            if g.get("std"):
                cv2.line(img, (xa, py(g["mean"] - g["std"])), (xa, py(g["mean"] + g["std"])), colour, 1)
            cv2.circle(img, (xa, ya), 5, colour, -1, cv2.LINE_AA)
        cv2.line(img, (x1 + 15, legend_y), (x1 + 45, legend_y), colour, 2, cv2.LINE_AA)
        cv2.circle(img, (x1 + 30, legend_y), 5, colour, -1, cv2.LINE_AA)
        cv2.putText(img, layer, (x1 + 52, legend_y + 5), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        legend_y += 24
    if t_mean is not None:
        for xs in range(x1 + 15, x1 + 45, 12):
            cv2.line(img, (xs, legend_y), (xs + 6, legend_y), (120, 120, 120), 1)
        cv2.putText(img, "depth teacher", (x1 + 52, legend_y + 5), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, f"{t_mean:.4g}" + ("" if t_in_range else " (off scale)"), (x1 + 52, legend_y + 24), font,
                    0.45, (90, 90, 90), 1, cv2.LINE_AA)
    return img
