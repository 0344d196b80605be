"""The ``tuner`` command. Parses, calls the core, prints through :mod:`tuner.console`.

Errors of the :class:`~tuner.errors.TunerError` tree print as one line and exit 2; ``--debug``
(anywhere on the command line) shows the traceback instead.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import sys

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tuner import __version__
from tuner.errors import TunerError, UsageError, quiet_libraries

# Off a terminal (logs, CI, pipes) tables get room instead of an 80-column squeeze; COLUMNS
# (the shell's, or set by hand) wins either way. Tables drop columns to fit, never wrap a cell.
out = Console(highlight=False, soft_wrap=False,
              width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160)
err = Console(stderr=True, highlight=False)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "--version", prog_name="tuner", message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
def app(debug: bool) -> None:
    """Find good training hyperparameters for PyTorch image classifiers.

    \b
    tuner plugins                              list architectures and datasets
    tuner optimize --plugin lenet-digits       tune (the embedded data, no download)
    tuner best studies/lenet-digits.db         what won, and by how much
    """


# ---------------------------------------------------------------------------------------------
@app.command()
@click.option("--check", metavar="ARCH-DATASET",
              help="Build the pair and train one batch on the CPU; print parameters and input shape.")
@click.option("--data-dir", help="Dataset folder (default: $TUNER_DATA_DIR, else ~/.cache/tuner/data).")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: architectures and datasets, each with distribution, version, description, error.")
def plugins(check: str | None, data_dir: str | None, as_json: bool) -> None:
    """List installed architectures and datasets, or check one pair."""
    from tuner.data import default_data_dir
    from tuner.errors import PluginError
    from tuner.registry import registry
    from tuner.run import contract_step, load_pair

    if check:
        pair = load_pair(check)
        report = contract_step(pair, default_data_dir(data_dir))
        out.print(f"{pair.name}: ok — {report.parameters:,} parameters, input "
                  f"{tuple(report.input_shape[1:])}, output {report.output_shape[1]} classes, "
                  f"one batch trained (loss {report.loss:.3f})")
        return
    reg = registry()
    listing: dict[str, list[dict[str, str | None]]] = {}
    for kind in ("architecture", "dataset"):
        listing[kind + "s"] = []
        for info in reg.infos(kind):
            description, error = None, None
            try:
                description = reg.load(kind, info.name).description
            except PluginError as e:  # listed with its error; never stops the listing
                error = f"broken: {e.reason}"
            except TunerError as e:
                error = str(e)
            listing[kind + "s"].append({"name": info.name, "distribution": info.distribution,
                                        "version": info.version, "description": description, "error": error})
    if as_json:
        print(json.dumps(listing, indent=2))
        return
    for key, title in (("architectures", "Architectures"), ("datasets", "Datasets")):
        table = Table(title=title, title_justify="left")
        for column in ("name", "distribution", "version", "description"):
            table.add_column(column)
        for row in listing[key]:
            shown = escape(row["description"] or "") if row["error"] is None else f"[red]{escape(row['error'])}[/red]"
            table.add_row(row["name"], row["distribution"], row["version"], shown)
        out.print(table)
    out.print("Pair them as ARCH-DATASET, e.g. `tuner optimize --plugin lenet-digits`.")


# ---------------------------------------------------------------------------------------------
@app.command()
@click.option("--plugin", "-p", required=True, metavar="ARCH-DATASET", help="What to tune, e.g. alexnet-mnist.")
@click.option("--trials", type=int,
              help="New trials to run now; a resumed study adds this many to those it holds "
                   "[default: 20; 1 with --params].")
@click.option("--study", help="Study name (default: the plugin).")
@click.option("--db", help="SQLite file (default: studies/<study>.db).")
@click.option("--storage", help="Any SQLAlchemy database URL, instead of --db.")
@click.option("--timeout", type=float, help="Start no trial after SECONDS.")
@click.option("--epochs", type=int, help="Epochs per trial (default 10; a study keeps its own).")
@click.option("--seed", type=int, help="Seed of sampler, split and weights (default 0; a study keeps its own).")
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--data-dir", help="Dataset folder (default: $TUNER_DATA_DIR, else ~/.cache/tuner/data).")
@click.option("--max-train", type=int,
              help="Cap on training examples, for quick runs; the validation part is cut to the same "
                   "proportion (N/9 at the default 10%). A study keeps it.")
@click.option("--sampler", type=click.Choice(["tpe", "random", "cmaes", "qmc"]), default="tpe", show_default=True)
@click.option("--pruner", type=click.Choice(["median", "hyperband", "sha", "none"]), default="median",
              show_default=True)
@click.option("--pruner-startup", type=int, default=3, show_default=True,
              help="median: trials that complete before any is pruned.")
@click.option("--pruner-warmup", type=int, default=0, show_default=True,
              help="median: epochs a trial trains before it can be pruned.")
@click.option("--space", "space", multiple=True, metavar="NAME=SPEC|FILE.toml",
              help="Override the search space: lr=1e-5:1e-1:log, batch_size=32,64, dropout=0.3, or a "
                   "TOML file. Repeatable.")
@click.option("--params", type=click.Path(dir_okay=False), metavar="FILE.json",
              help="Train exactly these hyperparameters (the output of `tuner best --json`, or "
                   '{"lr": 0.01, ...}): each is pinned, and no reference trial is queued.')
@click.option("--jobs", "-j", type=int, default=1, show_default=True,
              help="Trials trained at once on the device, each in its own process (small models "
                   "cannot fill a GPU alone). With more than 1, --seed no longer fixes the draws.")
@click.option("--compile", "compile_", is_flag=True,
              help="torch.compile each trial's model: the first trial pays the compile time, later "
                   "ones reuse it. Pays on a GPU for long trials; on a CPU it did not (docs/benchmarks.md).")
@click.option("--artifacts", metavar="DIR|s3://BUCKET",
              help="Where the study keeps trial weights (default: beside the .db file, studies/x.db -> "
                   "studies/x.artifacts/). Stored in the study: later runs and `best` find it.")
@click.option("--keep", type=int, help="Keep the weights of the K best trials, not only the best (a study keeps it).")
@click.option("--mlflow", metavar="URI", help="Log each trial to MLflow as one run: hyperparameters, per-epoch "
              "metrics, state (sqlite:///mlflow.db, http://host:5000; needs tuner[mlflow]).")
@click.option("--quiet", "-q", is_flag=True, help="One line per trial, no live display.")
def optimize(plugin: str, trials: int | None, study: str | None, db: str | None, storage: str | None,
             timeout: float | None, epochs: int | None, seed: int | None, device: str,
             data_dir: str | None, max_train: int | None, sampler: str, pruner: str,
             pruner_startup: int, pruner_warmup: int, space: tuple[str, ...], jobs: int, compile_: bool,
             params: str | None, artifacts: str | None, keep: int | None, mlflow: str | None,
             quiet: bool) -> None:
    """Run (or resume) a study: the reference settings first, then sampled ones."""
    if trials is None:
        trials = 1 if params else 20
    from tuner.heap import collector_paused

    # `kill`, a scheduler's preemption, systemd: stop as Ctrl-C does, the running trials stored.
    signal.signal(signal.SIGTERM, _terminate)
    signal.signal(signal.SIGHUP, _terminate)  # the terminal was closed: the same clean stop
    with collector_paused():  # start-up makes long-lived objects, not garbage
        from tuner.console import StudyProgress
        from tuner.insight import remember
        from tuner.run import OptimizeOptions, measure_test_accuracy, prepare_study, run_study

        options = OptimizeOptions(
            plugin=plugin, trials=trials, study=study, db=db, storage=storage, timeout=timeout,
            epochs=epochs, seed=seed, device=device, data_dir=data_dir, max_train=max_train,
            sampler=sampler, pruner=pruner, pruner_startup=pruner_startup,
            pruner_warmup=pruner_warmup, space=space or (), jobs=jobs, compile=compile_,
            artifacts=artifacts, keep=keep, params=params,
        )
        progress = StudyProgress(out, trials, live=out.is_terminal, quiet=quiet)
        callbacks: list = [progress]
        if mlflow:  # before the study is touched: a store MLflow refuses leaves nothing behind
            from tuner.tracking import MlflowLogger

            callbacks.append(MlflowLogger(mlflow, study or plugin, {"tuner.plugin": plugin}))
        prepared = prepare_study(options, listener=progress)
    s = prepared.settings
    stored = len(prepared.study.get_trials(deepcopy=False))
    out.print(
        f"study {prepared.study.study_name} in {prepared.location.shown} "
        f"({'new' if prepared.created else f'resumed, {stored} trials stored'}) · "
        f"{prepared.device}{f' · {jobs} trials at once' if jobs > 1 else ''} · {s['epochs']} epochs/trial · "
        f"{len(prepared.data.train_y):,} train / {len(prepared.data.val_y):,} validation examples"
    )
    out.print(f"weights kept in {prepared.artifacts.shown}", soft_wrap=True)
    interrupted, terminated = False, None
    with progress:
        try:
            run_study(prepared, trials, timeout, callbacks=callbacks, jobs=jobs)
        except KeyboardInterrupt as e:
            interrupted, terminated = True, e if isinstance(e, Terminated) else None
    if interrupted:
        err.print(f"interrupted: the running trial{'s are' if jobs > 1 else ' is'} stored as failed; "
                  "run the same command to resume")
    else:
        measure_test_accuracy(prepared)
        remember(prepared.study)
    _print_summary(prepared.study, prepared.location)
    if interrupted:
        sys.exit(terminated.exit_status if terminated else 130)


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is (exit status 143 instead of 130)."""

    exit_status = 128 + signal.SIGTERM


class HungUp(Terminated):
    """SIGHUP (the terminal closed), handled as SIGTERM is (exit status 129)."""

    exit_status = 128 + signal.SIGHUP


def _terminate(signum: int, frame: object) -> None:
    raise HungUp if signum == signal.SIGHUP else Terminated


def _print_summary(study, location, top: int = 10) -> None:
    from tuner.console import comparison_panel, counts_line, extra_keys, trials_table
    from tuner.errors import StudyError
    from tuner.study import best_summary, state_counts, view

    views = [view(t) for t in study.get_trials(deepcopy=False)]
    ranked = sorted(views, key=lambda v: (v.value is None, -(v.value or 0), v.number))[:top]
    space = study.user_attrs.get("provenance", {}).get("search_space", {})
    out.print(trials_table(ranked, f"Top {len(ranked)} of {len(views)} trials", extra_keys(space),
                           width=out.width))
    try:
        summary = best_summary(study, location.db_path)
    except StudyError as e:
        out.print(counts_line(state_counts(study)))
        out.print(str(e))
        return
    out.print(counts_line(summary["counts"]))
    out.print(comparison_panel(summary, location.shown))
    _print_weights_problem(summary)


# ---------------------------------------------------------------------------------------------
def _open(db: str, study: str | None):
    from tuner.study import open_study

    return open_study(db, study)


@app.command()
@click.argument("db")
@click.option("--study", help="Which study, when the database holds several.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def best(db: str, study: str | None, as_json: bool) -> None:
    """What won: value, hyperparameters, per-epoch curve, test accuracy, weights, reference."""
    from tuner.console import comparison_panel, counts_line, fmt, importance_bars, pct, runs_line, sparkline
    from tuner.space import applies
    from tuner.study import best_summary

    opened, location = _open(db, study)
    summary = best_summary(opened, location.db_path)
    if as_json:
        print(json.dumps(summary, indent=2))
        return
    params = Table(title=f"Best trial {summary['trial']} of {summary['plugin'] or summary['study']}",
                   title_justify="left", show_header=False)
    params.add_column()
    params.add_column()
    for key, value in summary["params"].items():
        if applies(key, summary["params"]):  # no StepLR settings under ReduceLROnPlateau, say
            params.add_row(key, fmt(value))
    out.print(params)
    if summary["importance"]:
        out.print(importance_bars(summary["importance"]))
    for hint in summary["hints"]:
        out.print(f"[yellow]hint:[/yellow] {hint}")
    curve = Table(title="Per epoch", title_justify="left")
    for column in ("epoch", "train loss", "val loss", "val acc", "lr"):
        curve.add_column(column, justify="right")
    for row in summary["epochs"]:
        curve.add_row(str(row["epoch"]), f"{row['train_loss']:.4f}", f"{row['val_loss']:.4f}",
                      pct(row["val_accuracy"]), f"{row['lr']:.3g}")
    out.print(curve)
    out.print("validation accuracy by epoch: " + sparkline([r["val_accuracy"] for r in summary["epochs"]]))
    out.print(counts_line(summary["counts"]))
    if len(summary["runs"]) > 1:
        out.print(runs_line(summary["runs"]))
    out.print(comparison_panel(summary, location.shown))
    _print_weights_problem(summary)


def _print_weights_problem(summary) -> None:
    from tuner.console import weights_problem

    problem = weights_problem(summary)
    if problem:
        out.print(f"[red]warning:[/red] {problem}", soft_wrap=True)


@app.command("trials")
@click.argument("db")
@click.option("--study", help="Which study, when the database holds several.")
@click.option("--state", multiple=True,
              type=click.Choice(["complete", "completed", "pruned", "fail", "failed", "running"]),  # STATE_NAMES
              help="Only trials in this state (repeatable).")
@click.option("--sort", type=click.Choice(["number", "value", "duration"]), default="number",
              show_default=True, help="Order: trial number, value (best first) or duration (longest first).")
@click.option("--limit", type=click.IntRange(min=1), help="Show at most N trials.")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: study, counts, and the trials shown (number, state, value, params, epochs, ...).")
def trials_command(db: str, study: str | None, state: tuple[str, ...], sort: str, limit: int | None,
                   as_json: bool) -> None:
    """Every trial: state, value, hyperparameters, epochs, time, and why it was pruned or failed."""
    from tuner.console import counts_line, extra_keys, trials_table
    from tuner.study import STATE_NAMES, select_trials, state_counts, trials_json

    opened, _ = _open(db, study)
    views = select_trials(opened, {STATE_NAMES[s] for s in state}, sort, limit)
    if as_json:
        print(json.dumps(trials_json(opened, views), indent=2))
        return
    space = opened.user_attrs.get("provenance", {}).get("search_space", {})
    out.print(trials_table(views, f"Trials of {opened.study_name}", extra_keys(space), width=out.width))
    out.print(counts_line(state_counts(opened)))


@app.command()
@click.argument("db")
@click.option("--trial", "number", type=int, required=True, help="The trial to re-train (see `tuner trials`).")
@click.option("--study", help="Which study, when the database holds several.")
@click.option("--tolerance", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Largest per-epoch drift of validation accuracy accepted, in percentage points.")
@click.option("--device", help="cpu, cuda or cuda:N (default: the trial's own when this machine has it, else cpu).")
@click.option("--data-dir", help="Dataset folder (default: $TUNER_DATA_DIR, else ~/.cache/tuner/data).")
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: trial, stored, reproduced (per-epoch validation accuracy), max_drift, environment.")
def reproduce(db: str, number: int, study: str | None, tolerance: float, device: str | None,
              data_dir: str | None, as_json: bool) -> None:
    """Re-train one stored trial from its recipe and compare it with what was stored, epoch by epoch.

    Exits 1 when the largest drift exceeds --tolerance."""
    from tuner.console import environment_line, pct
    from tuner.data import default_data_dir
    from tuner.replay import reproduce as replay
    from tuner.replay import trained_trial

    opened, _ = _open(db, study)
    trained_trial(opened, number)  # a wrong number is one line, before any header

    def show(epoch: int, stored: float, reproduced: float) -> None:
        if not as_json:
            out.print(f"{epoch:>5}  {pct(stored):>8}  {pct(reproduced):>10}  {100 * (reproduced - stored):+6.2f}")

    if not as_json:
        out.print(f"re-training trial {number} of {opened.study_name} with its stored seed and settings")
        out.print("epoch    stored  reproduced   drift")
    result = replay(opened, number, default_data_dir(data_dir), device, on_epoch=show)
    within = result.max_drift <= tolerance
    if as_json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        verdict = "reproduced" if within else "[red]not reproduced[/red]"
        out.print(f"largest drift {result.max_drift:.2f} points (tolerance {tolerance:g}): {verdict}")
        out.print(environment_line(result.environment), soft_wrap=True)
    if not within:
        sys.exit(1)


@app.command()
@click.argument("db")
@click.option("--study", help="Which study, when the database holds several.")
@click.option("-o", "--output", "output", metavar="FILE.html", help="Where to write it (default: STUDY-report.html).")
def report(db: str, study: str | None, output: str | None) -> None:
    """One HTML file that opens offline: history, per-epoch curves, importance, parallel
    coordinates, slices, lr x batch size, and a timeline per worker."""
    from pathlib import Path

    from tuner.report import write_report

    opened, location = _open(db, study)
    path = Path(output or f"{opened.study_name}-report.html")
    if path.is_dir():
        raise UsageError(f"-o {path} is a folder; give a file name such as {path / 'report.html'}")
    done = write_report(opened, location.db_path, location.shown, path)
    out.print(f"wrote {done['path']}: {len(done['plots'])} plots ({', '.join(done['plots'])}); it opens offline",
              soft_wrap=True)


@app.command()
@click.argument("db")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
def dashboard(db: str, port: int) -> None:
    """optuna-dashboard on the study, on 127.0.0.1 only, with the hyperparameters' own names
    (needs tuner[dashboard]). Ctrl-C stops it."""
    from tuner.dashboard import HOST, listen, serve
    from tuner.study import load_existing, locate, storage_for, study_names

    location = locate("", storage=db) if "://" in db else locate("", db=db)
    storage = storage_for(location, create=False)
    for name in study_names(storage) or [None]:
        load_existing(location, name)  # the checks `best` makes, on every study in the file
    server = listen(storage, port)
    out.print(f"optuna-dashboard on http://{HOST}:{port}/ for {location.shown} (Ctrl-C stops it)", soft_wrap=True)
    serve(server)


@app.command("export")
@click.argument("db")
@click.option("--trial", "number", type=int, help="The trial to export (default: the best).")
@click.option("--study", help="Which study, when the database holds several.")
@click.option("--format", "fmt", type=click.Choice(["torchscript", "onnx"]), required=True,
              help="torchscript: DIR/model.pt (torch.jit.load); onnx: DIR/model.onnx (needs tuner[onnx]).")
@click.option("-o", "--output", "output", required=True, metavar="DIR", help="Folder to write into (created).")
@click.option("--force", is_flag=True, help="Replace a model already exported into DIR.")
@click.option("--data-dir", help="Dataset folder (default: $TUNER_DATA_DIR, else ~/.cache/tuner/data).")
def export_command(db: str, number: int | None, study: str | None, fmt: str, output: str, force: bool,
                   data_dir: str | None) -> None:
    """Write a trial's model as TorchScript or ONNX, with model.json; verified on the test set first."""
    from pathlib import Path

    from tuner.console import pct
    from tuner.data import default_data_dir
    from tuner.export import export

    opened, location = _open(db, study)
    done = export(opened, location.db_path, number, fmt, Path(output), default_data_dir(data_dir), force=force)
    card, check = done.card, done.card["verification"]
    out.print(f"exported trial {card['trial']} of {card['study']} as {fmt}: {done.model_file}, "
              f"{done.folder / 'model.json'}", soft_wrap=True)
    stored = f" (stored {pct(check['test_accuracy_stored'])})" if check["test_accuracy_stored"] is not None else ""
    if check["compared"]:
        out.print(f"verified on {check['test_examples']:,} test examples: largest logit difference "
                  f"{check['max_abs_diff']:.2g}, test accuracy {pct(check['test_accuracy_exported'])}{stored}")
    else:
        out.print("[yellow]not compared:[/yellow] onnxruntime is not installed, so only the ONNX file's structure "
                  "was checked (pip install 'tuner[onnx]'); PyTorch test accuracy "
                  f"{pct(check['test_accuracy_pytorch'])}{stored}", soft_wrap=True)


# ---------------------------------------------------------------------------------------------
def _setup_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("note: %(message)s"))
    for name in ("tuner", "tuner_plugins"):
        logger = logging.getLogger(name)
        logger.setLevel(logging.INFO)
        logger.addHandler(handler)
        logger.propagate = False
    quiet_libraries()


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point. Returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args
    _setup_logging()
    try:
        result = app.main(args=args, prog_name="tuner", standalone_mode=False)
        return result if isinstance(result, int) else 0
    except TunerError as e:
        if debug:
            raise
        err.print(f"error: {e}", soft_wrap=True, markup=False)
        return e.exit_code
    except click.exceptions.UsageError as e:
        err.print(f"error: {e.format_message()} (see `{e.ctx.command_path if e.ctx else 'tuner'} --help`)",
                  soft_wrap=True)
        return 2
    except click.exceptions.Exit as e:
        return e.exit_code
    except click.ClickException as e:
        err.print(f"error: {e.format_message()}", soft_wrap=True)
        return e.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt) as e:
        err.print("interrupted")
        return e.exit_status if isinstance(e, Terminated) else 130


def console() -> None:
    """The ``tuner`` console script: :func:`main`, then the process ends.

    What is left on the heap is frozen first: ending a process that imported torch and
    torch._dynamo, Python collects ~500,000 objects once more on the way out (0.5 s of a 2-core
    machine; 0.15-0.2 s frozen, docs/benchmarks.md, benchmark 8). Exit handlers still run (the
    study storages are closed by :mod:`tuner.study`'s), and standard output and error are flushed."""
    status = main()
    gc.freeze()
    sys.exit(status)


if __name__ == "__main__":
    console()
