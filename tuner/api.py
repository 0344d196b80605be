"""tuner from Python: ``optimize``, ``best`` and ``trials`` with the CLI's arguments, returning
the plain dicts that ``--json`` prints. Errors are :class:`tuner.errors.TunerError` with the
CLI's one-line message; Optuna's INFO logs stay quiet unless ``verbose=True``.

    import tuner
    summary = tuner.optimize("lenet-digits", trials=20, epochs=10)
    print(summary["value"], summary["params"])
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["best", "optimize", "trials"]

def _quiet(verbose: bool) -> None:
    import optuna

    from tuner.errors import quiet_libraries

    quiet_libraries()
    if verbose:
        optuna.logging.set_verbosity(optuna.logging.INFO)


def optimize(plugin: str, trials: int | None = None, *, study: str | None = None, db: str | None = None,
             storage: str | None = None, timeout: float | None = None, epochs: int | None = None,
             seed: int | None = None, device: str = "auto", data_dir: str | None = None,
             max_train: int | None = None, sampler: str = "tpe", pruner: str = "median", pruner_startup: int = 3,
             pruner_warmup: int = 0, space: Sequence[str] = (), params: str | None = None, jobs: int = 1,
             compile: bool = False, artifacts: str | None = None, keep: int | None = None,
             verbose: bool = False) -> dict[str, Any]:
    """Run (or resume) a study, as ``tuner optimize`` does; returns what ``tuner best --json``
    prints. ``trials`` defaults to 20 (1 with ``params``). A KeyboardInterrupt stores the running
    trial as interrupted and propagates."""
    from tuner.insight import remember
    from tuner.run import OptimizeOptions, measure_test_accuracy, prepare_study, run_study
    from tuner.study import best_summary

    _quiet(verbose)
    if trials is None:
        trials = 1 if params else 20
    options = OptimizeOptions(
        plugin=plugin, trials=trials, study=study, db=db, storage=storage, timeout=timeout, epochs=epochs,
        seed=seed, device=device, data_dir=data_dir, max_train=max_train, sampler=sampler, pruner=pruner,
        pruner_startup=pruner_startup, pruner_warmup=pruner_warmup, space=tuple(space), jobs=jobs,
        compile=compile, artifacts=artifacts, keep=keep, params=params,
    )
    prepared = prepare_study(options)
    run_study(prepared, trials, timeout, jobs=jobs)
    measure_test_accuracy(prepared)
    remember(prepared.study)
    return best_summary(prepared.study, prepared.location.db_path)


def best(db: str, study: str | None = None, *, verbose: bool = False) -> dict[str, Any]:
    """What ``tuner best DB --json`` prints."""
    from tuner.study import best_summary, open_study

    _quiet(verbose)
    opened, location = open_study(db, study)
    return best_summary(opened, location.db_path)


def trials(db: str, study: str | None = None, *, state: Iterable[str] = (), sort: str = "number",
           limit: int | None = None, verbose: bool = False) -> dict[str, Any]:
    """What ``tuner trials DB --json`` prints: ``{"study", "counts", "trials": [...]}``."""
    from tuner.errors import UsageError
    from tuner.study import STATE_NAMES, open_study, select_trials, trials_json

    _quiet(verbose)
    wanted = set()
    for s in state:
        if s not in STATE_NAMES:
            raise UsageError(f"state {s!r}: choose from {', '.join(STATE_NAMES)}")
        wanted.add(STATE_NAMES[s])
    if sort not in ("number", "value", "duration"):
        raise UsageError(f"sort {sort!r}: choose number, value or duration")
    if limit is not None and limit < 1:
        raise UsageError(f"limit must be at least 1, got {limit}")
    opened, _ = open_study(db, study)
    return trials_json(opened, select_trials(opened, wanted, sort, limit))
