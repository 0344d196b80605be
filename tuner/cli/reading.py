"""``tuner best`` and ``tuner trials``: a stored study read back, as tables or as ``--json``."""

from __future__ import annotations

import json
from typing import Any

import click

from tuner.cli.app import STUDY_HELP, app, out
from tuner.storage.records import SORTS, STATE_NAMES


def open_target(db: str, study: str | None) -> Any:
    from tuner.storage.opening import open_study

    return open_study(db, study)


def print_summary(study: Any, location: Any, top: int = 10) -> None:
    """The top trials, the counts and the best-vs-reference panel: what ``tuner optimize`` ends with."""
    from tuner.after.summary import best_summary, search_line
    from tuner.cli.views import comparison_panel, counts_line, extra_keys, trials_table
    from tuner.errors import StudyError
    from tuner.storage.records import provenance, select_trials, state_counts

    views = select_trials(study, sort="value")
    space = provenance(study).get("search_space", {})
    out.print(trials_table(views[:top], f"Top {min(top, len(views))} of {len(views)} trials", extra_keys(space),
                           width=out.width))
    try:
        summary = best_summary(study, location.db_path)
    except StudyError as e:
        out.print(counts_line(state_counts(study)))
        out.print(str(e))
        return
    out.print(counts_line(summary["counts"]))
    out.print(search_line(summary["search"]))
    out.print(comparison_panel(summary, location.shown))
    print_weights_problem(summary)


def print_weights_problem(summary: dict[str, Any]) -> None:
    from tuner.cli.views import weights_problem

    problem = weights_problem(summary)
    if problem:
        out.print(f"[red]warning:[/red] {problem}", soft_wrap=True)


@app.command()
@click.argument("db")
@click.option("--study", help=STUDY_HELP)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def best(db: str, study: str | None, as_json: bool) -> None:
    """What won: value, hyperparameters, per-epoch curve, test accuracy, weights, reference."""
    from tuner.after.summary import best_summary, search_line
    from tuner.cli.views import (
        comparison_panel,
        counts_line,
        epochs_table,
        importance_bars,
        params_table,
        runs_line,
    )

    opened, location = open_target(db, study)
    summary = best_summary(opened, location.db_path)
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    out.print(params_table(summary))
    if summary["importance"]:
        out.print(importance_bars(summary["importance"]))
    for hint in summary["hints"]:
        out.print(f"[yellow]hint:[/yellow] {hint}")
    for line in epochs_table(summary["epochs"]):
        out.print(line)
    out.print(counts_line(summary["counts"]))
    out.print(search_line(summary["search"]))
    if len(summary["runs"]) > 1:
        out.print(runs_line(summary["runs"]))
    out.print(comparison_panel(summary, location.shown))
    print_weights_problem(summary)


@app.command("trials")
@click.argument("db")
@click.option("--study", help=STUDY_HELP)
@click.option("--state", multiple=True, type=click.Choice(list(STATE_NAMES)),
              help="Only trials in this state (repeatable).")
@click.option("--sort", type=click.Choice(SORTS), default=SORTS[0], show_default=True,
              help="Order: trial number, value (best first) or duration (longest first).")
@click.option("--limit", type=click.IntRange(min=1), help="Show at most N trials.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: study, counts, and the trials shown (number, state, value, params, epochs, ...).")
def trials_command(db: str, study: str | None, state: tuple[str, ...], sort: str, limit: int | None,
                   as_json: bool) -> None:
    """Every trial: state, value, hyperparameters, epochs, time, and why it was pruned or failed."""
    from tuner.after.summary import trials_json
    from tuner.cli.views import counts_line, extra_keys, trials_table
    from tuner.storage.records import provenance, select_trials, state_counts

    opened, _ = open_target(db, study)
    views = select_trials(opened, {STATE_NAMES[s] for s in state}, sort, limit)
    if as_json:
        print(json.dumps(trials_json(opened, views), indent=2))
        return
    space = provenance(opened).get("search_space", {})
    out.print(trials_table(views, f"Trials of {opened.study_name}", extra_keys(space), width=out.width))
    out.print(counts_line(state_counts(opened)))
