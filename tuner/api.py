"""tuner from Python: ``optimize``, ``best`` and ``trials`` with the CLI's arguments, returning
the plain dicts that ``--json`` prints. Errors are :class:`tuner.errors.TunerError` with the
CLI's one-line message; Optuna's INFO logs stay quiet unless ``verbose=True``.

    import tuner
    summary = tuner.optimize("lenet-digits", trials=20, epochs=10)
    print(summary["value"], summary["params"])
"""

from __future__ import annotations

import contextlib
import inspect
import os
import re
from collections.abc import Iterable, Iterator
from typing import Any

__all__ = ["best", "optimize", "trials"]


def _quiet(verbose: bool) -> None:
    import optuna

    from tuner.runtime.logs import quiet_libraries

    quiet_libraries()
    if verbose:
        optuna.logging.set_verbosity(optuna.logging.INFO)


@contextlib.contextmanager
def _python_names() -> Iterator[None]:
    """Errors name the Python argument (``epochs``), not the CLI flag (``--epochs``)."""
    from tuner.errors import TunerError

    try:
        yield
    except TunerError as e:
        text = re.sub(r"(?<![\w-])--([a-z][a-z-]*)", lambda m: m.group(1).replace("-", "_"), str(e))
        if text == str(e):
            raise
        e.args = (text,)
        raise


def _path(value: str | os.PathLike[str] | None) -> str | None:
    return None if value is None else os.fspath(value)


def optimize(plugin: str, trials: int | None = None, *, verbose: bool = False, **options: Any) -> dict[str, Any]:
    """Run (or resume) a study, as ``tuner optimize`` does; returns what ``tuner best --json``
    prints. Takes every option of ``tuner optimize`` by its field name in
    :class:`tuner.study.options.OptimizeOptions` (``epochs=``, ``space=[...]``, ``mlflow=``, ...),
    with the same defaults; ``trials`` defaults to 20 (1 with ``params``). A KeyboardInterrupt
    stores the running trial as interrupted and propagates."""
    from tuner.after.summary import best_summary
    from tuner.errors import UsageError
    from tuner.session import Session
    from tuner.study.options import OptimizeOptions

    _quiet(verbose)
    unknown = sorted(set(options) - set(OptimizeOptions.names()) - {"val_fraction"})
    if unknown:
        raise UsageError(f"tuner.optimize() got unknown option(s) {', '.join(unknown)}; it takes "
                         f"{', '.join(n for n in OptimizeOptions.names() if n != 'plugin')}")
    for name in ("db", "data_dir", "params", "artifacts"):
        options[name] = _path(options.get(name))
    if isinstance(options.get("space"), str):
        options["space"] = [options["space"]]
    with _python_names():
        session = Session(OptimizeOptions(plugin=plugin, trials=trials, **options))
        prepared = session.prepare()
        session.run()
        session.finish()
        return best_summary(prepared.study, prepared.location.db_path)


def _signature() -> inspect.Signature:
    """``optimize``'s signature as help() and editors show it: every option with its default."""
    import dataclasses

    from tuner.study.options import OptimizeOptions

    params = [inspect.Parameter("plugin", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=str),
              inspect.Parameter("trials", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)]
    for f in dataclasses.fields(OptimizeOptions):
        if f.name not in ("plugin", "trials", "val_fraction"):
            params.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=f.default))
    params.append(inspect.Parameter("verbose", inspect.Parameter.KEYWORD_ONLY, default=False))
    return inspect.Signature(params)


optimize.__signature__ = _signature()  # type: ignore[attr-defined]


def best(db: str | os.PathLike[str], study: str | None = None, *, verbose: bool = False) -> dict[str, Any]:
    """What ``tuner best DB --json`` prints."""
    from tuner.after.summary import best_summary
    from tuner.storage.opening import open_study

    _quiet(verbose)
    with _python_names():
        opened, location = open_study(os.fspath(db), study)
        return best_summary(opened, location.db_path)


def trials(db: str | os.PathLike[str], study: str | None = None, *, state: str | Iterable[str] = (),
           sort: str = "number", limit: int | None = None, verbose: bool = False) -> dict[str, Any]:
    """What ``tuner trials DB --json`` prints: ``{"study", "counts", "trials": [...]}``. ``state``
    is one state name or several."""
    from tuner.after.summary import trials_json
    from tuner.errors import UsageError
    from tuner.storage.opening import open_study
    from tuner.storage.records import SORTS, STATE_NAMES, select_trials

    _quiet(verbose)
    wanted = set()
    for s in [state] if isinstance(state, str) else state:
        if s not in STATE_NAMES:
            raise UsageError(f"state {s!r}: choose from {', '.join(STATE_NAMES)}")
        wanted.add(STATE_NAMES[s])
    if sort not in SORTS:
        raise UsageError(f"sort {sort!r}: choose {', '.join(SORTS[:-1])} or {SORTS[-1]}")
    if limit is not None and limit < 1:
        raise UsageError(f"limit must be at least 1, got {limit}")
    with _python_names():
        opened, _ = open_study(os.fspath(db), study)
        return trials_json(opened, select_trials(opened, wanted, sort, limit))
