"""``tuner reproduce``, ``tuner report``, ``tuner dashboard`` and ``tuner export``: what is made
from a finished study."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
from rich.markup import escape

from tuner.after.formats import FORMATS
from tuner.cli.app import STUDY_HELP, app, out
from tuner.cli.reading import open_target

STORED_DATA_DIR_HELP = ("Dataset folder (default: the one the study was made with, else $TUNER_DATA_DIR, else "
                        "~/.cache/tuner/data).")


@app.command()
@click.argument("db")
@click.option("--trial", "number", type=int, required=True, help="The trial to re-train (see `tuner trials`).")
@click.option("--study", help=STUDY_HELP)
@click.option("--tolerance", type=click.FloatRange(min=0), default=0.5, show_default=True,
              help="Largest per-epoch drift of validation accuracy accepted, in percentage points.")
@click.option("--device", help="cpu, cuda or cuda:N (default: the trial's own when this machine has it, else cpu).")
@click.option("--data-dir", help=STORED_DATA_DIR_HELP)
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: trial, stored, reproduced (per-epoch validation accuracy), max_drift, environment.")
def reproduce(db: str, number: int, study: str | None, tolerance: float, device: str | None,
              data_dir: str | None, as_json: bool) -> None:
    """Re-train one stored trial from its recipe and compare it with what was stored, epoch by epoch.

    Exits 1 when the largest drift exceeds --tolerance."""
    from tuner.after.rebuild import trained_trial
    from tuner.after.reproduce import reproduce as replay
    from tuner.after.summary import pct
    from tuner.cli.views import environment_line
    from tuner.data.loading import default_data_dir
    from tuner.storage import records

    opened, _ = open_target(db, study)
    trained = trained_trial(opened, number)  # a wrong number is one line, before any header
    cohort = [n for n in trained.user_attrs.get(records.COHORT) or [] if n != number]

    def show(epoch: int, stored: float, reproduced: float) -> None:
        if not as_json:
            out.print(f"{epoch:>5}  {pct(stored):>8}  {pct(reproduced):>10}  {100 * (reproduced - stored):+6.2f}")

    def header() -> None:  # once plugins and data are found: a missing one is the only line
        if not as_json:
            out.print(f"re-training trial {number} of {opened.study_name} with its stored seed and settings")
            if cohort:  # --fuse: it trained stacked with others; alone, dropout draws its masks apart
                out.print(f"it trained fused with trial{'s' if len(cohort) > 1 else ''} "
                          f"{', '.join(map(str, cohort))} (--fuse); this trains it alone")
            out.print("epoch    stored  reproduced   drift")

    given = default_data_dir(data_dir) if data_dir else None
    result = replay(opened, number, given, device, on_epoch=show, on_start=header)
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
@click.option("--study", help=STUDY_HELP)
@click.option("-o", "--output", "output", metavar="FILE.html", help="Where to write it (default: STUDY-report.html).")
def report(db: str, study: str | None, output: str | None) -> None:
    """One HTML file that opens offline: history, per-epoch curves, importance, parallel
    coordinates, slices, lr x batch size, and a timeline per worker."""
    from tuner.after.report import write_report

    opened, location = open_target(db, study)
    path = Path(output or f"{opened.study_name}-report.html")
    done = write_report(opened, location.db_path, location.shown, path)
    out.print(f"wrote {done['path']}: {len(done['plots'])} plots ({', '.join(done['plots'])}); it opens offline",
              soft_wrap=True)


#: The dashboard computes importance its own way; `tuner best` and the report share one answer.
DASHBOARD_IMPORTANCE = ("the dashboard's importance is optuna-dashboard's own, over every parameter as Optuna "
                        "stores it (switches such as weight_decay_is_zero folded in here, inactive ones included); "
                        "`tuner best` and `tuner report` rank the hyperparameters every trial sampled, with one "
                        "evaluator, and say when there are too few trials to rank")


@app.command()
@click.argument("db")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
def dashboard(db: str, port: int) -> None:
    """optuna-dashboard on the study, on 127.0.0.1 only, with the hyperparameters' own names
    (needs tuner[dashboard]). Ctrl-C stops it."""
    from tuner.after.dashboard import HOST, listen, serve
    from tuner.storage.location import locate_target
    from tuner.storage.opening import load_existing, storage_for, study_names

    location = locate_target(db)
    storage = storage_for(location, create=False)
    for name in study_names(storage) or [None]:
        load_existing(location, name)  # the checks `best` makes, on every study in the file
    server = listen(storage, port)
    out.print(f"optuna-dashboard on http://{HOST}:{port}/ for {location.shown} (Ctrl-C stops it)", soft_wrap=True)
    out.print(f"note: {DASHBOARD_IMPORTANCE}", soft_wrap=True)
    serve(server)


@app.command("export")
@click.argument("db")
@click.option("--trial", "number", type=int, help="The trial to export (default: the best).")
@click.option("--study", help=STUDY_HELP)
@click.option("--format", "fmt", type=click.Choice(list(FORMATS)), required=True,
              help="torchscript: DIR/model.pt (torch.jit.load); onnx: DIR/model.onnx (needs tuner[onnx]).")
@click.option("-o", "--output", "output", required=True, metavar="DIR", help="Folder to write into (created).")
@click.option("--force", is_flag=True, help="Replace a model already exported into DIR.")
@click.option("--data-dir", help=STORED_DATA_DIR_HELP)
def export_command(db: str, number: int | None, study: str | None, fmt: str, output: str, force: bool,
                   data_dir: str | None) -> None:
    """Write a trial's model as TorchScript or ONNX, with model.json; verified on the test set first."""
    from tuner.after.export import export
    from tuner.after.summary import pct
    from tuner.data.loading import default_data_dir

    opened, location = open_target(db, study)
    given = default_data_dir(data_dir) if data_dir else None  # else the study's own
    done = export(opened, location.db_path, number, fmt, Path(output), given, force=force)
    card, check = done.card, done.card["verification"]
    out.print(f"exported trial {card['trial']} of {card['study']} as {fmt}: {done.model_file}, "
              f"{done.folder / 'model.json'}", soft_wrap=True)
    stored = f" (stored {pct(check['test_accuracy_stored'])})" if check["test_accuracy_stored"] is not None else ""
    if number is None:  # the best: what the summary says of it goes with it
        from tuner.after.summary import best_summary

        for claim in best_summary(opened, location.db_path)["claims"]:
            out.print(f"[yellow]note:[/yellow] {escape(claim)}", soft_wrap=True)
    if check["compared"]:
        out.print(f"verified on {check['test_examples']:,} test examples: largest logit difference "
                  f"{check['max_abs_diff']:.2g}, test accuracy {pct(check['test_accuracy_exported'])}{stored}")
    else:
        out.print("[yellow]not compared:[/yellow] onnxruntime is not installed, so only the ONNX file's structure "
                  "was checked (pip install 'tuner[onnx]'); PyTorch test accuracy "
                  f"{pct(check['test_accuracy_pytorch'])}{stored}", soft_wrap=True)
