"""One ``tuner optimize`` run, the same for the CLI and ``tuner.optimize``: the options checked
once, the study prepared, its trials run, and the finished study scored on the test set,
its importances kept and its tracking closed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from tuner.after.importance import remember
from tuner.after.tracking import finish_tracking, loggers
from tuner.execution import run_study
from tuner.study import check_options, measure_test_accuracy, prepare_study

if TYPE_CHECKING:
    import optuna

    from tuner.study import OptimizeOptions, PreparedStudy

Callback = Callable[["optuna.Study", "optuna.trial.FrozenTrial"], None]


class Session:
    """A run of ``options``: checked when made (before ``--mlflow``'s store or anything else
    is made), then :meth:`prepare`, :meth:`run` and, unless interrupted, :meth:`finish`.
    ``listener`` hears each trial's epochs; ``callbacks`` are told each finished trial, before
    the ``--mlflow`` loggers."""

    def __init__(self, options: OptimizeOptions, listener: Any = None, callbacks: Sequence[Callback] = ()) -> None:
        self.options = options
        self.checked = check_options(options)
        self.trackers = loggers(options.mlflow, options.study_name, options.plugin)
        self.callbacks = [*callbacks, *self.trackers]
        self.listener = listener
        self._prepared: PreparedStudy | None = None

    @property
    def prepared(self) -> PreparedStudy:
        assert self._prepared is not None, "Session.prepare() comes first"
        return self._prepared

    def prepare(self) -> PreparedStudy:
        """The study opened or created, its data on the device, ``--jobs``/``--fuse`` chosen."""
        self._prepared = prepare_study(self.options, listener=self.listener, checked=self.checked)
        return self._prepared

    def run(self) -> None:
        """The trials run; a KeyboardInterrupt stores the running ones as interrupted and propagates."""
        planned = self.prepared.options  # --jobs auto made a number
        run_study(self.prepared, self.options.trials, self.options.timeout, callbacks=self.callbacks,
                  jobs=planned.jobs)

    def finish(self) -> None:
        """The best and the reference scored on the test set (once), importances kept, tracking closed."""
        prepared = self.prepared
        measure_test_accuracy(prepared)
        remember(prepared.study)
        finish_tracking(self.trackers, prepared.study, prepared.location.db_path)
