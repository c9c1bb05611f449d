"""Text for the dashboard's panels, shared by the live app and ``dkp watch --once`` (pure: state in, ``Text`` out)."""

from __future__ import annotations

from rich.text import Text

from dkp_tui.watch.braille import PlotSeries
from dkp_tui.watch.state import CHART_GROUPS, RunModel, WatchState
from dkp_tui.watch.sysstats import SysStats

STATUS_STYLE = {
    "running": "green",
    "finished": "cyan",
    "failed": "bold red",
    "stalled": "bold yellow",
    "unknown": "#808080",
    "gone": "bold #808080",
    "queued": "blue",
}
MAIN_COLORS = ("#ffffff", "cyan", "magenta")
COMPARE_COLORS = ("yellow", "green", "red")


def fmt_duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def fmt_num(v: float | None, digits: int = 4) -> str:
    if v is None:
        return "–"
    if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e5):
        return f"{v:.{max(digits - 2, 1)}e}"
    return f"{v:.{digits}g}"


def fmt_mb(mb: float | None) -> str:
    if mb is None:
        return "–"
    return f"{mb / 1024:.1f}G" if mb >= 1024 else f"{mb:.0f}M"


def chart_series(state: WatchState) -> list[PlotSeries]:
    """The current chart group for the shown run (and the compared one, drawn first so it sits underneath)."""
    out: list[PlotSeries] = []
    keys = CHART_GROUPS[state.group]
    for run, colors, compared in (
        (state.compared, COMPARE_COLORS, True),
        (state.current, MAIN_COLORS, False),
    ):
        if run is None:
            continue
        for (key, label), color in reversed(list(zip(keys, colors, strict=False))):
            s = run.series[key]
            if len(s):
                group = run.name if compared else ""
                out.append(PlotSeries(label, s.x, s.smoothed(state.smoothing), color, group))
    return out


def chart_title(state: WatchState) -> str:
    smooth = f"EMA {state.smoothing:g}" if state.smoothing > 0 else "raw"
    title = f"{state.group} · {smooth} · {'log' if state.log_scale else 'linear'}"
    return f"{title} · vs {state.compared.name}" if state.compared is not None else title


def status_line(state: WatchState, now: float) -> Text:
    run = state.current
    if run is None:
        return Text(f"dkp watch · no runs under {state.root.name or state.root} yet", no_wrap=True)
    status = run.status(now)
    out = Text(no_wrap=True, overflow="ellipsis")
    out.append(run.name, style="bold")
    out.append(f" · {run.role}{' (KD)' if run.role == 'student' and run.distilled else ''} ")
    out.append(status, style=STATUS_STYLE.get(status, ""))
    total = run.total
    pct = f" {100 * run.step / total:.1f}%" if total else ""
    out.append(f" · step {run.step}/{total or '?'}{pct}")
    eta = run.eta(now)
    if eta is not None:
        out.append(f" · ETA {fmt_duration(eta)}")
    rate = run.steps_per_s()
    if rate is not None:
        out.append(f" · {rate:.3g} it/s")
    return out


def metrics_text(run: RunModel | None, now: float) -> Text:
    if run is None:
        return Text("–")
    v = run.last_value
    out = Text(no_wrap=True, overflow="ellipsis")
    out.append("loss ", style="#b2b2b2")
    out.append(fmt_num(v("loss")), style="bold")
    out.append(" rec ", style="#b2b2b2")
    out.append(fmt_num(v("loss_rec")), style="cyan")
    if run.distilled or v("loss_kd") is not None:
        out.append(" kd ", style="#b2b2b2")
        out.append(fmt_num(v("loss_kd")), style="magenta")
    out.append("\nlr ", style="#b2b2b2")
    out.append(fmt_num(v("lr"), 3))
    out.append("  α ", style="#b2b2b2")
    out.append(fmt_num(v("alpha"), 3))
    out.append("  ", style="#b2b2b2")
    out.append(fmt_num(v("images_per_s"), 3))
    out.append(" img/s", style="#b2b2b2")
    out.append("\nedge w ", style="#b2b2b2")
    out.append(f"{fmt_num(v('edge_w_mean'), 3)}±{fmt_num(v('edge_w_std'), 3)}")
    out.append(" max ", style="#b2b2b2")
    out.append(fmt_num(v("edge_w_max"), 3))
    out.append("\ntrainer ", style="#b2b2b2")
    out.append(f"CPU {fmt_num(v('cpu_percent'), 3)}% RSS {fmt_mb(v('rss_mb'))}")
    if v("gpu_mem_mb") is not None:
        out.append(f" GPU {fmt_mb(v('gpu_mem_mb'))}")
    out.append("\n")
    age = (
        f"last line {fmt_duration(now - run.last_time)} ago"
        if run.last_time is not None
        else "no metrics yet"
    )
    out.append(age, style="#808080")
    if run.last_checkpoint is not None:
        out.append(f" · ckpt {run.last_checkpoint}", style="#808080")
    out.append(" · corrupt ", style="#808080")
    out.append(str(run.corrupt), style="bold red" if run.corrupt else "#808080")
    message = str(run.end.get("message") or run.meta.message or "")
    if message:
        out.append("\n" + message, style="red")
    return out


def _bar(pct: float | None, width: int = 8) -> str:
    if pct is None:
        return " " * width
    filled = max(0, min(width, int(round(pct / 100 * width))))
    return "█" * filled + "░" * (width - filled)


def system_text(stats: SysStats | None) -> Text:
    out = Text(no_wrap=True, overflow="ellipsis")
    if stats is None:
        return Text("sampling…", style="#808080")
    out.append("CPU ", style="#b2b2b2")
    out.append(_bar(stats.cpu_percent), style="green")
    out.append(f" {stats.cpu_percent:4.0f}% of {stats.cpu_count}\n")
    ram_pct = 100 * stats.ram_used_mb / stats.ram_total_mb if stats.ram_total_mb else None
    out.append("RAM ", style="#b2b2b2")
    out.append(_bar(ram_pct), style="blue")
    out.append(f" {fmt_mb(stats.ram_used_mb)}/{fmt_mb(stats.ram_total_mb)}")
    if not stats.gpus:
        out.append("\nGPU ", style="#b2b2b2")
        out.append(stats.gpu_note or "no GPU", style="#808080")
    for g in stats.gpus:
        out.append(f"\nGPU{g.index} ", style="#b2b2b2")
        out.append(_bar(g.util_percent), style="magenta")
        util = f"{g.util_percent:3.0f}%" if g.util_percent is not None else "  –"
        temp = f" {g.temp_c:.0f}°C" if g.temp_c is not None else ""
        out.append(f" {util} {fmt_mb(g.mem_used_mb)}/{fmt_mb(g.mem_total_mb)}{temp}")
    return out


def run_row(run: RunModel, now: float, compared: bool) -> tuple[Text, str, Text, str, str]:
    """(name, role, status, step, last loss) cells of the run list."""
    status = run.status(now)
    loss = run.last_value("loss")
    name = Text(("◆ " if compared else "") + run.name, style="yellow" if compared else "")
    return name, run.role, Text(status, style=STATUS_STYLE.get(status, "")), str(run.step), fmt_num(loss, 3)
