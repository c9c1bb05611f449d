"""`dkp eval --runs N [--compare]`: N seeds of teacher + distilled student (+ the image-only student), and the
paper's Table 2 layout with mean ± sample std (ddof = 1), min, max and every run's value.

Directory layout under ``--out``::

    <out>/seed{s}/teacher         depth teacher (evaluated on depth: the "depth teacher only" row)
    <out>/seed{s}/student         distilled student (teacher = seed{s}/teacher), evaluated on RGB
    <out>/seed{s}/student-only    kd.gamma = 0 (AutoLink), only with --compare
    <out>/summary.json            the table as JSON (rewritten once every job has finished, or by --collect)
    <out>/jobs.json               each job's state and log (dkp_tui.formats.job_list), for `dkp watch`
    <out>/logs/  <out>/slurm/     the local workers' and the Slurm jobs' logs
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

VARIANTS = ("student-only", "teacher", "distilled")
ROW_LABELS = {
    "student-only": "image student only",
    "teacher": "depth teacher only",
    "distilled": "distilled student",
}
RUN_NAMES = {"student-only": "student-only", "teacher": "teacher", "distilled": "student"}


@dataclass
class Plan:
    jobs: list[Job]
    variant_of: dict[str, str] = field(default_factory=dict)  # run path -> variant


def plan_repeats(preset: str, n_runs: int, compare: bool, out: Path, overrides: Sequence[str] = (),
                 one_teacher: bool = False) -> Plan:
    """Jobs in the order they must run: per seed the teacher, then the distilled student (then student-only).

    ``one_teacher``: train only seed 0's teacher and distil every seed's student from it (cheaper; the teacher
    row then has one value).
    """
    if n_runs < 1:
        raise DkpError("--runs must be >= 1")
    plan = Plan([])
    for seed in range(n_runs):
        base = seed_config(preset, overrides, seed)
        if base.kd.gamma <= 0:
            raise DkpError(f"the config has kd.gamma={base.kd.gamma}; the distilled student needs kd.gamma > 0 "
                           "(the image-only baseline comes with --compare)")
        d = Path(out) / f"seed{seed}"
        teacher_run = Path(out) / "seed0" / RUN_NAMES["teacher"] if one_teacher else d / RUN_NAMES["teacher"]
        seed_jobs = []
        if not one_teacher or seed == 0:
            seed_jobs.append((Job(teacher_run, base, "teacher", None, seed, f"seed {seed} teacher"), "teacher"))
        distilled = Job(d / RUN_NAMES["distilled"], base, "student", teacher_run, seed, f"seed {seed} distilled")
        seed_jobs.append((distilled, "distilled"))
        if compare:
            only_cfg = seed_config(preset, overrides, seed, ["kd.gamma=0"])
            seed_jobs.append((Job(d / RUN_NAMES["student-only"], only_cfg, "student", None, seed,
                                  f"seed {seed} student-only"), "student-only"))
        for job, variant in seed_jobs:
            plan.jobs.append(job)
            plan.variant_of[str(job.run)] = variant
    return plan


def summarize(plan: Plan, records: Sequence[dict[str, Any]], preset: str, n_runs: int) -> dict[str, Any]:
    """The Table 2 summary: one row per variant, values per seed in seed order."""
    by_variant: dict[str, list[tuple[int, dict[str, Any]]]] = {}
    for job, record in zip(plan.jobs, records, strict=True):
        by_variant.setdefault(plan.variant_of[str(job.run)], []).append((job.seed, record))
    first = records[0] if records else {}
    reference = mean_pose_of(records)
    higher = bool(first.get("higher_is_better"))
    rows = []
    for variant in VARIANTS:
        if variant not in by_variant:
            continue
        items = sorted(by_variant[variant], key=lambda x: x[0])
        values = [r.get("value") for _, r in items]
        on_fig = [(r.get("extras") or {}).get("on_figure") for _, r in items]
        rows.append({
            "variant": variant, "label": ROW_LABELS[variant], "input": items[0][1].get("input"),
            "seeds": [s for s, _ in items], "values": values, **stats(values),
            "on_figure": on_fig if any(v is not None for v in on_fig) else None,
            "on_figure_stats": stats(on_fig) if any(v is not None for v in on_fig) else None,
            "runs": [r.get("run") for _, r in items], "fallbacks": sum(len(r.get("fallbacks") or []) for _, r in items),
        })
        if reference is not None:
            rows[-1]["skill"] = skills(values, reference, higher)
            rows[-1]["skill_stats"] = stats(rows[-1]["skill"])
    summary: dict[str, Any] = {
        "preset": preset, "n_runs": n_runs, "protocol": first.get("protocol"), "metric": first.get("metric"),
        "label": first.get("label"), "higher_is_better": first.get("higher_is_better"),
        "options": first.get("options"), "dataset": first.get("dataset"), "manifest_hash": first.get("manifest_hash"),
        "dkp_version": first.get("dkp_version"), "rows": rows, "mean_pose": reference,
    }
    means = {r["variant"]: r["mean"] for r in rows}
    if means.get("distilled") is not None and means.get("student-only"):
        summary["ratio_distilled_to_student_only"] = means["distilled"] / means["student-only"]
    return summary


def run_repeats(preset: str, n_runs: int, compare: bool, out: Path, overrides: Sequence[str] = (), *,
                one_teacher: bool = False, device: str = "auto", batch_size: int = 64, progress: bool = True,
                train_fn: TrainFn | None = None, launch: LaunchOptions | None = None,
                note: NoteFn | None = None) -> dict[str, Any]:
    """Plan, run the job list with ``launch``'s launcher (default: in this process, in order), summarise.

    With ``launch.collect`` nothing runs: the summary covers the finished runs."""
    from dkp_tui.atomic import check_output_dir, write_json

    check_output_dir(out, "--out")
    plan = plan_repeats(preset, n_runs, compare, out, overrides, one_teacher)
    jobs, records = execute(plan.jobs, Path(out), launch or LaunchOptions(), device=device, batch_size=batch_size,
                            progress=progress, train_fn=train_fn, note=note)
    summary = summarize(Plan(jobs, plan.variant_of), records, preset, n_runs)
    summary["one_teacher"] = one_teacher
    write_json(Path(out) / "summary.json", summary)
    return summary


def table(summary: dict[str, Any]) -> Any:
    """The rich table of the summary: rows = variants, columns = mean ± std, min, max, per seed (+ on-figure)."""
    from rich.table import Table

    arrow = "↑" if summary.get("higher_is_better") else "↓"
    opts = ", ".join(f"{k}={v}" for k, v in (summary.get("options") or {}).items()
                     if k in ("swap_table", "threshold_px", "image_size"))
    title = (f"{summary.get('label')} {arrow} — preset {summary.get('preset')}, {summary.get('n_runs')} seeds"
             + (f" ({opts})" if opts else ""))
    t = Table(title=title, title_justify="left")
    reference = summary.get("mean_pose") or {}
    has_skill = reference.get("value") is not None
    t.add_column("variant (input)", min_width=None if has_skill else 14)  # with skill: 80 columns need rich free to wrap
    t.add_column("mean ± std", justify="right", no_wrap=True)
    t.add_column("min", justify="right", no_wrap=True)
    t.add_column("max", justify="right", no_wrap=True)
    has_fig = any(r.get("on_figure") for r in summary["rows"])
    if has_fig:
        t.add_column("on figure %", justify="right", no_wrap=True)
    if has_skill:
        t.add_column("skill", justify="right", no_wrap=True)
    t.add_column("per seed", justify="left", overflow="fold", min_width=5 if has_skill else 12)
    for r in summary["rows"]:
        cells = [
            f"{r['label']} ({r.get('input')})",
            fmt_mean_std(r),
            "–" if r["min"] is None else f"{r['min']:.2f}",
            "–" if r["max"] is None else f"{r['max']:.2f}",
        ]
        if has_fig:
            fs = r.get("on_figure_stats")
            cells.append("–" if not fs or fs["mean"] is None else
                         f"{fs['mean'] * 100:.1f}" + ("" if fs["std"] is None else f" ± {fs['std'] * 100:.1f}"))
        if has_skill:  # the mean's skill (skill is affine in the score); the spread is in the values and the JSON
            mean_skill = (r.get("skill_stats") or {}).get("mean")
            cells.append("–" if mean_skill is None else f"{mean_skill:.2f}")
        cells.append(" ".join("–" if v is None else f"{v:.2f}" for v in r["values"]))
        t.add_row(*cells)
    if has_skill:  # the reference row: what knowing nothing about the image scores
        t.add_row("constant mean pose (fit split)", f"{reference['value']:.2f}", "", "", *(["–"] if has_fig else []),
                  "0", "", style="dim")
    ratio = summary.get("ratio_distilled_to_student_only")
    captions = [f"distilled / image-only student = {ratio:.3f}"] if ratio is not None else []
    if has_skill:
        from dkp_tui.eval.protocols import skill_formula

        captions.append(f"skill = {skill_formula(bool(summary.get('higher_is_better')))}")
        if has_fig and reference.get("figure_area") is not None:
            captions.append(f"random points land on the figure {reference['figure_area'] * 100:.1f} %")
    if captions:
        t.caption = "; ".join(captions)
    return t
