"""What a person sees of a study: trial tables that fit the terminal, the best-vs-reference
panel, the best trial's settings and curve. Rich tables on a terminal or off it (rich drops colour
off a terminal)."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from tuner.after.summary import pct
from tuner.storage.records import TrialView

KEY_PARAMS = ("lr", "batch_size", "optimizer", "weight_decay", "dropout")
SPARK = "▁▂▃▄▅▆▇█"


def fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def sparkline(values: list[float]) -> str:
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int((v - lo) / span * (len(SPARK) - 1)))] for v in values)


#: Columns of the trials table in the order they are given up when the terminal is too narrow;
#: after them the note (why a trial was pruned or failed) folds onto more lines instead.
DROP_ORDER = ("time", "dropout", "weight_decay", "epochs", "optimizer", "batch_size")


def trials_table(views: list[TrialView], title: str, extra_keys: tuple[str, ...] = (),
                 width: int | None = None) -> Table:
    """One row per trial. With ``width``, columns are dropped (plugin extras first, then
    :data:`DROP_ORDER`) until the table fits without wrapping a cell but the note; the caption
    names them."""
    # Where each trial trained, when not all in one place (--jobs over GPUs, --ray nodes).
    where = ["where"] if len({_where(v) for v in views}) > 1 else []
    columns = ["#", "state", "value", *KEY_PARAMS, *extra_keys, *where, "epochs", "time", "note"]
    dropped: list[str] = []
    order = [*reversed(extra_keys), *where, *DROP_ORDER]
    while True:
        table = _trials_table(views, title, [c for c in columns if c not in dropped], dropped)
        if width is None or not order or _fits(table, width):
            return table
        dropped.append(order.pop(0))


def _where(v: TrialView) -> str:
    return v.where or v.device or "—"


def _fits(table: Table, width: int) -> bool:
    """Whether ``table`` fits ``width`` with its note folded to 24 columns at most."""
    from rich.measure import Measurement

    console = Console(width=10_000)
    natural = Measurement.get(console, console.options, table).maximum
    note = table.columns[-1]
    longest = max((len(str(cell)) for cell in note.cells), default=0)
    return natural - max(0, longest - 24) <= width


def _trials_table(views: list[TrialView], title: str, columns: list[str], dropped: list[str]) -> Table:
    caption = f"hidden to fit: {', '.join(dropped)}" if dropped else None
    table = Table(title=title, title_justify="left", caption=caption, caption_justify="left")
    for column in columns:
        table.add_column(column, justify="right" if column in ("#", "value", "epochs", "time") else "left",
                         no_wrap=column != "note")
    for v in views:
        note = "reference" if v.reference else ""
        if v.reason:
            note = f"{note}; {v.reason}" if note else v.reason
        cells = {"#": str(v.number), "state": v.state.lower(), "value": pct(v.value), "epochs": str(v.epochs_run),
                 "time": "—" if v.duration_s is None else f"{v.duration_s:.1f}s", "note": note, "where": _where(v)}
        table.add_row(*(cells[c] if c in cells else fmt(v.hparams.get(c)) for c in columns))
    return table


def extra_keys(space: dict[str, str]) -> tuple[str, ...]:
    """Plugin-specific hyperparameters (a width, a second dropout) get their own columns."""
    builtin = {*KEY_PARAMS, "momentum", "scheduler", "epochs"}
    return tuple(k for k in space if k not in builtin and not k.startswith(("plateau_", "step_")))


def comparison_panel(summary: dict[str, Any], db_shown: str) -> Panel:
    best_v, ref_v = summary["value"], summary["reference_value"]
    best_t, ref_t = summary["test_accuracy"], summary["reference_test_accuracy"]
    rows = Table.grid(padding=(0, 2))
    rows.add_column()
    rows.add_column(justify="right")
    rows.add_column(justify="right")
    rows.add_column(justify="right")
    rows.add_row("", f"best (trial {summary['trial']})",
                 f"reference (trial {summary['reference_trial']})" if summary["reference_trial"] is not None
                 else "reference", "change")
    rows.add_row("validation accuracy", pct(best_v), pct(ref_v), change(best_v, ref_v))
    rows.add_row("test accuracy", pct(best_t), pct(ref_t), change(best_t, ref_t))
    sure = [certainty_line(part, d) for part, d in summary.get("difference", {}).items() if d is not None]
    said = [f"[yellow]note:[/yellow] {escape(claim)}" for claim in summary.get("claims", [])]
    lines = [rows, *sure, *said, "",
             f"weights: {weights_line(summary)}",
             f"see it again: tuner best {db_shown} --study {summary['study']}"]
    return Panel(Group(*lines), title=f"{summary['study']}: best vs hand-picked reference",
                 title_align="left", expand=False)


def certainty_line(part: str, d: dict[str, Any]) -> str:
    """``validation (144, one = 0.69 pts): SE 1.17 pts, paired; beyond noise (2.4 SE)``."""
    verdict = ("[yellow]within noise[/yellow] (under 2 SE): not a sure win" if d["within_noise"]
               else f"beyond noise ({abs(d['points']) / d['se_points']:.1f} SE)")
    return (f"{part} ({d['examples']:,}, one = {d['example_points']:.2f} pts): SE {d['se_points']:.2f} pts, "
            f"{'paired' if d['paired'] else 'unpaired'}; {verdict}")


def weights_line(summary: dict[str, Any]) -> str:
    """The best trial's weights file, or what is wrong with them, by name."""
    if summary["weights"]:
        return summary["weights"]
    if summary.get("weights_artifact") is None:
        return "— (not kept)"
    return "[red]not usable[/red] (below)"


def weights_problem(summary: dict[str, Any]) -> str | None:
    """One line naming the best trial's weights and what is wrong with them, or None."""
    found = summary.get("weights_artifact")
    if summary["weights"] or found is None:
        return None
    where = found["path"] or f"artifact {found['id']} in {summary.get('artifacts') or 'the artifact store'}"
    return (f"weights of trial {summary['trial']} {found['problem']}: {where}; re-run the trial or "
            "restore the file")


def change(new: float | None, old: float | None) -> str:
    if new is None or old is None:
        return "—"
    return f"{100 * (new - old):+.2f} pts"


def runs_line(runs: list[dict[str, Any]]) -> str:
    """How many ``tuner optimize`` runs made the study, on which devices, and where the search
    space was not the study's first (trials before and after were drawn from different spaces)."""
    devices = list(dict.fromkeys(r.get("device", "?") for r in runs))
    line = f"{len(runs)} runs of tuner optimize, on {', '.join(devices)}"
    changed = [str(i + 1) for i, r in enumerate(runs) if "search_space" in r]
    if changed:
        line += f"; the search space differed from the study's first in run {', '.join(changed)}"
    return line


def counts_line(counts: dict[str, int]) -> str:
    """``8 complete · 3 pruned · 0 failed``, and ``· 1 running`` while any is."""
    line = (f"{counts.get('COMPLETE', 0)} complete · {counts.get('PRUNED', 0)} pruned · "
            f"{counts.get('FAIL', 0)} failed")
    return line + (f" · {counts['RUNNING']} running" if counts.get("RUNNING") else "")


def environment_line(env: dict[str, Any]) -> str:
    """``environment: same as stored (...)`` or ``environment differs: torch_version 2.4.0 -> 2.14.1``."""
    now = env["now"]
    if not env["differs"]:
        return (f"environment: same as stored (tuner {now['tuner_version']}, torch {now['torch_version']}, "
                f"{now['device']}, {now['threads']} threads)")
    changes = ", ".join(f"{k} {env['stored'][k]} -> {now[k]}" for k in env["differs"])
    return f"environment differs: {changes}"


def importance_bars(result: dict[str, Any], top: int = 6, width: int = 30) -> Table:
    """The hyperparameters that mattered most, as bars (shares of the explained variance)."""
    table = Table(title=f"What mattered ({result['evaluator']} importance over {result['trials']} complete trials)",
                  title_justify="left", show_header=False, box=None, padding=(0, 1),
                  caption=f"note: {result['note']}" if result.get("note") else None, caption_justify="left")
    table.add_column()
    table.add_column()
    table.add_column(justify="right")
    values = list(result["values"].items())[:top]
    largest = max((v for _, v in values), default=0) or 1
    for name, share in values:
        table.add_row(name, "█" * max(1, round(width * share / largest)) if share > 0 else "", f"{share:.0%}")
    return table


def params_table(summary: dict[str, Any]) -> Table:
    """The best trial's hyperparameters (only those that had an effect: no StepLR settings under
    ReduceLROnPlateau, say)."""
    from tuner.search.space import applies

    table = Table(title=f"Best trial {summary['trial']} of {summary['plugin'] or summary['study']}",
                  title_justify="left", show_header=False)
    table.add_column()
    table.add_column()
    for key, value in summary["params"].items():
        if applies(key, summary["params"]):
            table.add_row(key, fmt(value))
    return table


def epochs_table(epochs: list[dict[str, float]]) -> list[Any]:
    """The best trial's per-epoch table and its validation accuracy as a sparkline."""
    curve = Table(title="Per epoch", title_justify="left")
    for column in ("epoch", "train loss", "val loss", "val acc", "lr"):
        curve.add_column(column, justify="right")
    for row in epochs:
        curve.add_row(str(row["epoch"]), f"{row['train_loss']:.4f}", f"{row['val_loss']:.4f}",
                      pct(row["val_accuracy"]), f"{row['lr']:.3g}")
    return [curve, "validation accuracy by epoch: " + sparkline([r["val_accuracy"] for r in epochs])]
