"""``tuner optimize``: its flags built from :class:`~tuner.study.options.OptimizeOptions`, a live
view while trials run, the summary when they end."""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from typing import Any

import click

from tuner.cli.app import app, err, out
from tuner.cli.reading import print_summary
from tuner.runtime import interrupt
from tuner.study.options import AUTO, Flag, OptimizeOptions


class _Trials(click.ParamType):
    """``--trials``, ``--jobs`` and ``--fuse``: a whole number, or auto."""

    def __init__(self, name: str) -> None:
        self.name = name

    def convert(self, value: Any, param: Any, ctx: Any) -> int | str:
        if isinstance(value, int) or str(value).strip().lower() == AUTO:
            return value  # OptimizeOptions spells auto its one way
        try:
            return int(value)
        except ValueError:
            self.fail(f"{value!r} is not a whole number or auto", param, ctx)


def _click_option(f: dataclasses.Field) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The click option of one field of OptimizeOptions."""
    flag: Flag = f.metadata["flag"]
    names = [f"--{f.name.replace('_', '-')}", *([flag.short] if flag.short else [])]
    kwargs: dict[str, Any] = {"help": flag.help, "metavar": flag.metavar, "required": flag.required,
                              "show_default": flag.show_default}
    if flag.is_flag:
        kwargs["is_flag"] = True
    elif flag.multiple:
        kwargs["multiple"] = True
    else:
        kwargs["default"] = f.default
    if isinstance(flag.type, tuple):
        kwargs["type"] = click.Choice(flag.type)
    elif flag.type in ("trials", "jobs", "fuse"):
        kwargs["type"] = _Trials(flag.type)
    elif flag.type == "path":
        kwargs["type"] = click.Path(dir_okay=False)
    elif flag.type is not None:
        kwargs["type"] = flag.type
    return click.option(*names, f.name, **kwargs)


def _with_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """Every OptimizeOptions field that is a flag, in the dataclass's order (as --help lists them)."""
    for f in reversed([f for f in dataclasses.fields(OptimizeOptions) if "flag" in f.metadata]):
        command = _click_option(f)(command)
    return command


@app.command()
@_with_options
@click.option("--quiet", "-q", is_flag=True, help="One line per trial, no live display.")
def optimize(quiet: bool, **fields: Any) -> None:
    """Run (or resume) a study: the reference settings first, then sampled ones."""
    from tuner.runtime.collector import collector_paused

    interrupt.stop_like_ctrl_c()
    with collector_paused():  # start-up makes long-lived objects, not garbage
        from tuner.cli.progress import StudyProgress
        from tuner.session import Session

        options = OptimizeOptions(**fields)
        progress = StudyProgress(out, options.trial_budget, live=out.is_terminal, quiet=quiet, jobs=options.jobs)
        session = Session(options, listener=progress, callbacks=[progress])
        prepared = session.prepare()
        planned = prepared.options  # --jobs auto, --fuse: the numbers chosen
        progress.jobs = planned.jobs * planned.fuse
    _print_start(prepared)
    _print_estimate(prepared, progress)
    stop = None
    with progress:
        try:
            session.run()
        except KeyboardInterrupt as e:
            stop = e
    if stop is not None:
        several = planned.jobs > 1 or options.ray is not None
        err.print(f"interrupted: the running trial{'s are' if several else ' is'} stored as failed; "
                  "run the same command to resume")
    else:
        session.finish()
    print_summary(prepared.study, prepared.location)
    _say_timed_out(prepared.study)
    if stop is not None:
        sys.exit(interrupt.exit_status(stop))


def _print_estimate(prepared: Any, progress: Any) -> None:
    """The study's cost, measured on a few steps before trial 0, and what to do when it is long."""
    from tuner.planning.estimate import estimate

    options = prepared.options
    found = estimate(prepared.objective.arch, prepared.data, prepared.device, prepared.objective.epochs,
                     options.trial_budget, options.jobs)
    out.print(found.line(), soft_wrap=True)
    hint = found.hint()
    if hint:
        out.print(f"[yellow]note:[/yellow] {hint}", soft_wrap=True)
    progress.estimated(found.trial_s)


def _say_timed_out(study: Any) -> None:
    """The trials ``--timeout`` stopped mid-way, and how to go on with them."""
    from tuner.storage import records

    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get(records.RETRY_OF) for t in trials}
    for t in trials:
        if t.user_attrs.get(records.FAIL_REASON) == records.TIMED_OUT and t.number not in retried:
            done = len(t.user_attrs.get(records.HISTORY, []))
            saved = "saved there: run the same command to go on from it" if records.CHECKPOINT in t.user_attrs \
                else "not saved (no artifact store)"
            out.print(f"--timeout: trial {t.number} stopped after epoch {done}, as its next epoch would have ended "
                      f"after the timeout; {saved}", soft_wrap=True)


def _print_start(prepared: Any) -> None:
    """What is about to run. A resume counts the trials ``tuner trials`` shows (not one queued
    again); the weights folder is named once it exists."""
    s, jobs = prepared.settings, prepared.options.jobs
    stored = sum(1 for t in prepared.study.get_trials(deepcopy=False) if t.state.name != "WAITING")
    plural = "" if stored == 1 else "s"
    out.print(
        f"study {prepared.study.study_name} in {prepared.location.shown} "
        f"({'new' if prepared.created else f'resumed, {stored} trial{plural} stored'}) · "
        f"{prepared.device}{f' · {jobs} trials at once' if jobs > 1 else ''} · {s['epochs']} epochs/trial · "
        f"{len(prepared.data.train_y):,} train / {len(prepared.data.val_y):,} validation examples"
    )
    if prepared.jobs_plan is not None:
        out.print(prepared.jobs_plan.line(), soft_wrap=True, highlight=False)
    if prepared.fuse_plan is not None:
        out.print(prepared.fuse_plan.line(), soft_wrap=True, highlight=False)
    folder = prepared.artifacts.folder
    if folder is None or folder.is_dir():
        out.print(f"weights kept in {prepared.artifacts.shown}", soft_wrap=True)
