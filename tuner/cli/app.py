"""The ``tuner`` command group and its console script: errors of the
:class:`~tuner.errors.TunerError` tree print as one line and exit 2; ``--debug`` (anywhere on the
command line) shows the traceback instead."""

from __future__ import annotations

import gc
import logging
import os
import sys

import click
from rich.console import Console

from tuner import __version__
from tuner.errors import TunerError
from tuner.runtime.interrupt import exit_status
from tuner.runtime.logs import quiet_libraries

# Off a terminal (logs, CI, pipes) tables get room instead of an 80-column squeeze; COLUMNS
# (the shell's, or set by hand) wins either way. Tables drop columns to fit, never wrap a cell.
out = Console(highlight=False, soft_wrap=False,
              width=None if sys.stdout.isatty() or os.environ.get("COLUMNS") else 160)
err = Console(stderr=True, highlight=False)

STUDY_HELP = "Which study, when the database holds several."


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
        return exit_status(e)


def console() -> None:
    """The ``tuner`` console script: :func:`main`, then the process ends.

    What is left on the heap is frozen first: ending a process that imported torch and
    torch._dynamo, Python would collect all of their objects once more on the way out
    (docs/benchmarks.md, benchmark 8). Exit handlers still run (the study storages are closed by
    :mod:`tuner.storage.opening`'s), and standard output and error are flushed."""
    status = main()
    gc.freeze()
    sys.exit(status)
