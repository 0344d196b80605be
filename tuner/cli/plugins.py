"""``tuner plugins``: the installed architectures and datasets (a broken one with its error), or one pair checked."""

from __future__ import annotations

import json

import click
from rich.markup import escape
from rich.table import Table

from tuner.cli.app import app, out
from tuner.errors import PluginError, TunerError
from tuner.study.options import DATA_DIR_HELP


@app.command()
@click.option("--check", metavar="ARCH-DATASET",
              help="Build the pair, train one batch on the CPU and time a step; print parameters, shapes, "
                   "seconds per step and per epoch.")
@click.option("--data-dir", help=DATA_DIR_HELP)
@click.option("--json", "as_json", is_flag=True,
              help="Print JSON: architectures and datasets, each with distribution, version, description, error.")
def plugins(check: str | None, data_dir: str | None, as_json: bool) -> None:
    """List installed architectures and datasets, or check one pair."""
    if check:
        _check(check, data_dir)
        return
    listing = _listing()
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


def _check(plugin: str, data_dir: str | None) -> None:
    from tuner.data.loading import default_data_dir
    from tuner.planning.check import contract_step, step_timing
    from tuner.planning.timing import duration
    from tuner.plugins.pair import load_pair

    pair = load_pair(plugin)
    folder = default_data_dir(data_dir)
    report = contract_step(pair, folder)
    out.print(f"{pair.name}: ok — {report.parameters:,} parameters, input "
              f"{tuple(report.input_shape[1:])}, output {report.output_shape[1]} classes, "
              f"one batch trained (loss {report.loss:.3f})")
    timing, train, val = step_timing(pair, folder)
    out.print(f"on the cpu: {timing.describe()} · {duration(timing.epoch_s(train, val))} an epoch of {train:,} "
              f"training and {val:,} validation images", soft_wrap=True)


def _listing() -> dict[str, list[dict[str, str | None]]]:
    from tuner.plugins.registry import registry

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
    return listing
