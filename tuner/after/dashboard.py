"""optuna-dashboard on a tuner study, showing the hyperparameters by their own names.

tuner samples "0 or a log range" (weight decay, min lr) as a switch, ``weight_decay_is_zero``,
plus the range. The dashboard would show the switch and leave ``weight_decay`` out of every
trial where it is 0. :class:`NamedParams` is a read-through view of the study's storage that
gives each trial ``weight_decay`` itself, 0 included, on a linear 0..high axis (a log axis has
no 0), and no switch. Everything else (notes, user attributes) passes through unchanged.
"""

from __future__ import annotations

import re
import signal
import threading
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import optuna
from optuna.distributions import BaseDistribution, FloatDistribution
from optuna.storages import BaseStorage
from optuna.trial import FrozenTrial

from tuner.errors import UsageError
from tuner.storage import records
from tuner.storage.records import ZERO_SWITCH

#: The only address it listens on: the study's records are not for the network.
HOST = "127.0.0.1"
_HIGH = re.compile(r"\.\.([0-9.eE+-]+)")  # "1e-06..0.01 log or 0" -> 0.01


def named_trial(trial: FrozenTrial, highs: dict[str, float]) -> FrozenTrial:
    """``trial`` with each zero switch folded into its hyperparameter."""
    if not any(k.endswith(ZERO_SWITCH) for k in trial.params):
        return trial
    params: dict[str, Any] = {}
    dists: dict[str, BaseDistribution] = {}
    for name, dist in trial.distributions.items():
        if name.endswith(ZERO_SWITCH):
            base = name.removesuffix(ZERO_SWITCH)
            high = highs.get(base) or getattr(trial.distributions.get(base), "high", None)
            if high is None:
                continue
            dists[base] = FloatDistribution(0.0, high)
            params[base] = 0.0 if trial.params[name] else trial.params[base]
        elif f"{name}{ZERO_SWITCH}" not in trial.distributions:
            dists[name], params[name] = dist, trial.params[name]
    return optuna.trial.FrozenTrial(
        number=trial.number, state=trial.state, value=None, values=trial.values,
        datetime_start=trial.datetime_start, datetime_complete=trial.datetime_complete, params=params,
        distributions=dists, user_attrs=trial.user_attrs, system_attrs=trial.system_attrs,
        intermediate_values=trial.intermediate_values, trial_id=trial._trial_id,
    )


class NamedParams(BaseStorage):
    """A storage that reads through to ``inner`` and shows trials through :func:`named_trial`."""

    def __init__(self, inner: BaseStorage) -> None:
        self._inner = inner
        self._highs: dict[int, dict[str, float]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _highs_of(self, study_id: int) -> dict[str, float]:
        """Top of each "0 or a range" hyperparameter, from the space the study recorded."""
        if study_id not in self._highs:
            space = self._inner.get_study_user_attrs(study_id).get(records.PROVENANCE, {}).get("search_space", {})
            self._highs[study_id] = {k: float(m.group(1)) for k, v in space.items()
                                     if str(v).endswith(" or 0") and (m := _HIGH.search(str(v)))}
        return self._highs[study_id]

    def get_all_trials(self, study_id: int, deepcopy: bool = True, states: Any = None) -> list[FrozenTrial]:
        highs = self._highs_of(study_id)
        return [named_trial(t, highs) for t in self._inner.get_all_trials(study_id, deepcopy=deepcopy, states=states)]

    def get_trial(self, trial_id: int) -> FrozenTrial:
        study_id = self._inner.get_study_id_from_trial_id(trial_id)
        return named_trial(self._inner.get_trial(trial_id), self._highs_of(study_id))

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        return named_trial(self._inner.get_best_trial(study_id), self._highs_of(study_id))


def _delegate(name: str) -> Any:
    def method(self: NamedParams, *args: Any, **kwargs: Any) -> Any:
        return getattr(self._inner, name)(*args, **kwargs)

    method.__name__ = name
    return method


for _name in BaseStorage.__abstractmethods__ | {"get_trial_id_from_study_id_trial_number"}:
    if _name not in NamedParams.__dict__:
        setattr(NamedParams, _name, _delegate(_name))
NamedParams.__abstractmethods__ = frozenset()


def listen(storage: BaseStorage, port: int) -> WSGIServer:
    """optuna-dashboard's app on ``HOST:port``, bound but not answering yet (see :func:`serve`)."""
    try:
        from optuna_dashboard import wsgi
    except ImportError:
        raise UsageError("tuner dashboard needs optuna-dashboard: pip install 'tuner[dashboard]'") from None
    try:
        return make_server(HOST, port, wsgi(NamedParams(storage)), handler_class=_QuietHandler)
    except OSError as e:  # the port is taken, or not ours to bind
        raise UsageError(f"cannot listen on {HOST}:{port} ({e.strerror}); pick another port with --port") from None


def serve(server: WSGIServer) -> None:
    """Answer until Ctrl-C (or SIGTERM), then close the port.

    The server answers from a thread of its own while the main thread waits for the signal:
    under optuna-dashboard's own ``run_server`` a Ctrl-C that landed while a page was being
    sent was caught by the request handler, printed as a traceback, and the server went on."""
    answering = threading.Thread(target=server.serve_forever, name="dashboard", daemon=True)
    answering.start()
    stopped = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    try:
        while not stopped.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.shutdown()
        server.server_close()


class _QuietHandler(WSGIRequestHandler):
    """No line per request on the terminal (the browser polls several times a second)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass
