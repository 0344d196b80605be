"""Draw a study's search into one self-contained HTML file, with Optuna's plotly figures.

The file embeds plotly's JavaScript once and needs no network. Each plot sits in a
``<div class="plot">`` with its title; a small script records JavaScript errors in the page
(``#errors``), so that a browser loading the file can tell a drawn report from a broken one.
"""

from __future__ import annotations

import datetime
import html
import warnings
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from tuner.after import importance
from tuner.after.files import made_by_tuner, refuse_study_files, study_files, write_atomic
from tuner.after.summary import best_summary, pct, search_line
from tuner.errors import UsageError
from tuner.storage import records
from tuner.storage.records import ZERO_SWITCH, reference_trial, state_counts

GREY = "rgba(150, 150, 150, 0.45)"


def _plotly() -> Any:
    import plotly.graph_objects as go  # imported when a report is drawn, not by every command

    return go


def searched_params(trials: list[FrozenTrial]) -> list[str]:
    """Hyperparameters the study searched, by their own names (no ``*_is_zero`` switches), the
    most often sampled first."""
    counts: dict[str, int] = {}
    for t in trials:
        for k in t.params:
            if not k.endswith(ZERO_SWITCH):
                counts[k] = counts.get(k, 0) + 1
    return sorted(counts, key=lambda k: (-counts[k], k))


def figures(study: optuna.Study) -> list[tuple[str, str, Any]]:
    """``(title, caption, figure)`` for every plot of the report, in the order shown. Accuracies
    are percentages everywhere, epochs count from 1 as on the command line."""
    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    out: list[tuple[str, str, Any]] = [_history(study), _curves(study, trials)]
    bars = _importance(study)
    if bars is not None:
        out.append(bars)
    params = searched_params(done)
    if len(done) >= 2 and params:
        out += _across(study, params)
    timeline = worker_timeline(study, trials)
    if timeline is not None:
        out.append(("Timeline", "When each trial ran, one row per worker process; colour is the trial's "
                    "state.", timeline))
    return out


def _history(study: optuna.Study) -> tuple[str, str, Any]:
    history = optuna.visualization.plot_optimization_history(study, target_name="validation accuracy")
    ref = reference_trial(study)
    if ref is not None and ref.state == TrialState.COMPLETE:
        history.add_hline(y=ref.value, line_dash="dash", line_color="firebrick",
                          annotation_text=f"reference (trial {ref.number}) {ref.value:.2%}")
    history.update_yaxes(tickformat=".1%")
    return ("Optimization history", "Each completed trial's validation accuracy, the best so far, and the "
            "hand-picked reference.", history)


def _curves(study: optuna.Study, trials: list[FrozenTrial]) -> tuple[str, str, Any]:
    """One line per trial, named by its number, epochs from 1; pruned trials grey."""
    curves = optuna.visualization.plot_intermediate_values(study)
    states = {t.number: t.state for t in trials}
    for trace in curves.data:
        number = _trial_number(trace.name)
        if number is None:
            continue
        pruned = states.get(number) == TrialState.PRUNED
        name = f"trial {number}" + (" (pruned)" if pruned else "")
        trace.update(x=[x + 1 for x in trace.x], name=name, showlegend=True,
                     hovertemplate=f"{name}<br>epoch %{{x}}: %{{y:.2%}}<extra></extra>")
        if pruned:
            trace.update(line={"color": GREY}, marker={"color": GREY})
    curves.update_yaxes(tickformat=".0%", title="validation accuracy")
    curves.update_xaxes(title="epoch", dtick=1)
    curves.update_layout(showlegend=True)
    return ("Validation accuracy per epoch", "One line per trial, named in the legend; pruned trials in grey, "
            "stopped where the pruner cut them.", curves)


def _importance(study: optuna.Study) -> tuple[str, str, Any] | None:
    ranked = importance.importance(study)
    if ranked is None:
        return None
    go = _plotly()
    bars = go.Figure(go.Bar(x=list(ranked["values"].values())[::-1], y=list(ranked["values"])[::-1],
                            orientation="h", marker_color="steelblue"))
    bars.update_layout(title=f"Hyperparameter importance ({ranked['evaluator']}, {ranked['trials']} trials)",
                       xaxis_tickformat=".0%")
    caption = ("Share of the validation accuracy's variance each hyperparameter explains (Optuna's importance "
               "evaluator, as `tuner best` shows it; `= 0?` is the switch between zero and a range).")
    if ranked.get("note"):
        caption += f" {ranked['note']}."
    return ("What mattered", caption, bars)


def _across(study: optuna.Study, params: list[str]) -> list[tuple[str, str, Any]]:
    """Parallel coordinates, slices in rows of three (they fit the page), lr × batch size."""
    vis, shown = optuna.visualization, params[:8]
    parallel = vis.plot_parallel_coordinate(study, params=shown, target_name="validation accuracy")
    _objective_axis_in_percent(parallel)
    slices = vis.plot_slice(study, params=shown, target_name="validation accuracy")
    _in_rows(slices, len(shown), per_row=3)
    slices.update_yaxes(tickformat=".0%")
    out = [("Parallel coordinates", "Every completed trial across the searched hyperparameters.", parallel),
           ("Slices", "Validation accuracy against each hyperparameter, one point per trial.", slices)]
    pair = [p for p in ("lr", "batch_size") if p in params]
    if len(pair) == 2:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Optuna notes that the contour is experimental
            contour = vis.plot_contour(study, params=pair, target_name="validation accuracy")
        contour.update_traces(selector={"type": "contour"}, colorbar_tickformat=".0%")
        out.append(("Learning rate × batch size", "Validation accuracy interpolated between the trials.", contour))
    return out


def _objective_axis_in_percent(figure: Any) -> None:
    """The parallel coordinates' first axis is validation accuracy: its labels as percentages.
    Optuna draws the axes with lines and labels them with annotations (a parcoords trace before)."""
    for trace in figure.data:
        if trace.type == "parcoords" and trace.dimensions:
            trace.dimensions[0].tickformat = ".1%"
    for note in figure.layout.annotations or ():
        if note.x == 0:
            try:
                note.text = f"{float(note.text):.1%}"
            except (TypeError, ValueError):
                continue


def _in_rows(figure: Any, panels: int, per_row: int) -> None:
    """Optuna's slices stand in one row as wide as 300 px a panel: lay them out ``per_row`` a row."""
    rows = -(-panels // per_row)
    if panels <= 1:
        return
    gap_x, gap_y = 0.06, 0.12 / max(rows - 1, 1) if rows > 1 else 0.0
    width, height = (1 - gap_x * (per_row - 1)) / per_row, (1 - gap_y * (rows - 1)) / rows
    for k in range(panels):
        row, col = divmod(k, per_row)
        suffix = "" if k == 0 else str(k + 1)
        x0, y1 = col * (width + gap_x), 1 - row * (height + gap_y)
        figure.layout[f"xaxis{suffix}"].domain = [x0, x0 + width]
        figure.layout[f"yaxis{suffix}"].domain = [y1 - height, y1]
        figure.layout[f"yaxis{suffix}"].showticklabels = True
    figure.update_layout(width=None, height=max(480, 320 * rows), autosize=True)


def _trial_number(name: str | None) -> int | None:
    digits = "".join(c for c in (name or "") if c.isdigit())
    return int(digits) if digits else None


def worker_timeline(study: optuna.Study, trials: list[FrozenTrial]) -> Any:
    """Optuna's timeline has a row per trial; with several workers the question is what each
    worker did when, so this one has a row per process (host and pid, as the trial recorded)."""
    go = _plotly()
    timed = [t for t in trials if t.datetime_start is not None]
    if not timed:
        return None
    start = min(t.datetime_start for t in timed)
    now = datetime.datetime.now()
    colours = {"COMPLETE": "seagreen", "PRUNED": "darkgrey", "FAIL": "firebrick", "RUNNING": "steelblue"}
    fig = go.Figure()
    for state, colour in colours.items():
        chosen = [t for t in timed if t.state.name == state]
        if not chosen:
            continue
        fig.add_trace(go.Bar(
            base=[(t.datetime_start - start).total_seconds() for t in chosen],
            x=[((t.datetime_complete or now) - t.datetime_start).total_seconds() for t in chosen],
            y=[_worker(t) for t in chosen], orientation="h", name=state.lower(), marker_color=colour,
            text=[f"#{t.number}" for t in chosen], hovertext=[f"trial {t.number} ({state.lower()})" for t in chosen],
        ))
    fig.update_layout(barmode="overlay", xaxis_title="seconds since the first trial started", yaxis_title="worker")
    return fig


def _worker(trial: FrozenTrial) -> str:
    record = trial.user_attrs.get(records.PROCESS)
    if isinstance(record, dict) and record.get("pid") is not None:
        host = str(record.get("host", "")).split("/")[0] or "?"  # the machine's name, without boot id
        return f"{host} pid {record['pid']}"
    return "unknown"


def write_report(study: optuna.Study, db_path: Path | None, shown: str, path: Path) -> dict[str, Any]:
    """Write the report to ``path`` (see :func:`check_target`); returns ``{"path", "plots": [titles]}``."""
    import plotly.io as pio

    check_target(study, db_path, path)
    plots = figures(study)
    summary = best_summary(study, db_path)
    counts = state_counts(study)
    sections = []
    for i, (title, caption, fig) in enumerate(plots):
        fig.update_layout(template="plotly_white", margin={"t": 60, "l": 60, "r": 30, "b": 50})
        if fig.layout.height is None:
            fig.update_layout(height=480)
        div = pio.to_html(fig, full_html=False, include_plotlyjs=i == 0, div_id=f"plot-{i}",
                          config={"displaylogo": False, "responsive": True})
        sections.append(f'<section><h2>{html.escape(title)}</h2><p>{html.escape(caption)}</p>'
                        f'<div class="plot">{div}</div></section>')
    head = _header(study, summary, counts, shown)
    page = _PAGE.format(title=html.escape(f"tuner report: {study.study_name}"), header=head,
                        sections="\n".join(sections))
    write_atomic(path, page)
    return {"path": str(path), "plots": [title for title, _, _ in plots]}


def check_target(study: optuna.Study, db_path: Path | None, path: Path) -> None:
    """Refuse, before anything is drawn, an ``-o`` that is a folder, one of the study's own files,
    or a file that is not an earlier tuner report."""
    if path.is_dir():
        raise UsageError(f"-o {path} is a folder; give a file name such as {path / 'report.html'}")
    refuse_study_files(path, study_files(study, db_path))
    if path.exists() and not made_by_tuner(path, MARKER):
        raise UsageError(f"-o {path} exists and is not a tuner report; give a new file name (a report "
                         "replaces only an earlier report)")


def _header(study: optuna.Study, summary: dict[str, Any], counts: dict[str, int], shown: str) -> str:
    d = summary["difference"]["validation"]
    sure = "" if d is None else (f" ({'within noise' if d['within_noise'] else 'beyond noise'}: "
                                 f"SE {d['se_points']:.2f} points on {d['examples']:,} examples)")
    hints = "".join(f"<li>{html.escape(h)}</li>" for h in [*summary["claims"], *summary["hints"]])
    rows = [
        ("study", f"{study.study_name} in {shown}"),
        ("trials", f"{counts['COMPLETE']} complete, {counts['PRUNED']} pruned, {counts['FAIL']} failed"),
        ("best", f"trial {summary['trial']}: validation {pct(summary['value'])}, test {pct(summary['test_accuracy'])}"),
        ("reference", f"trial {summary['reference_trial']}: validation {pct(summary['reference_value'])}, "
                      f"test {pct(summary['reference_test_accuracy'])}{sure}"),
        ("search", search_line(summary["search"]).removeprefix("search: ")),
    ]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    return f"<table>{table}</table>" + (f"<ul class='hints'>{hints}</ul>" if hints else "")


MARKER = '<meta name="generator" content="tuner report">'  # what makes a file one tuner may replace
_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="generator" content="tuner report"><title>{title}</title>
<script>window.tunerErrors = []; window.addEventListener("error", function (e) {{
  window.tunerErrors.push(String(e.message)); var el = document.getElementById("errors");
  if (el) {{ el.textContent = window.tunerErrors.join("\\n"); }} }});</script>
<style>body {{ font-family: sans-serif; max-width: 1100px; margin: 2em auto; color: #222; }}
th {{ text-align: left; padding-right: 1em; }} section {{ margin-top: 2em; }} .hints {{ color: #8a5a00; }}</style>
</head><body><h1>{title}</h1>{header}
<pre id="errors"></pre>
{sections}
<pre id="drawn" hidden></pre>
<script>window.addEventListener("load", function () {{ setTimeout(function () {{
  /* What the browser drew, per plot: a page that loads can be told from one that draws. */
  var drawn = Array.prototype.map.call(document.querySelectorAll(".plot .js-plotly-plot"), function (gd) {{
    var points = 0;
    (gd._fullData || []).forEach(function (t) {{
      points += (t.x || t.z || t.dimensions || t.values || []).length; }});
    return {{ id: gd.id, traces: (gd._fullData || []).length, points: points,
             svg: gd.querySelectorAll(".main-svg").length }}; }});
  document.getElementById("drawn").textContent = JSON.stringify(drawn); }}, 300); }});</script>
</body></html>
"""
