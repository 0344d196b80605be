"""Several trials at once on one device: ``tuner optimize --jobs N``.

A small model cannot keep a GPU (or a many-core CPU) busy: most of a step is Python launching
kernels. N worker processes each train their own trial against the same study database, so the
device interleaves N trials' kernels. Processes, not threads, because the bottleneck is the
Python interpreter of each training loop.

The main process has already created the study (provenance, the queued reference trial) with
:func:`tuner.study.prepare.prepare_study`; each worker opens it again the same way, with the same
options, and runs trials until the shared budget of ``--trials`` is spent or ``--timeout``
passes. Workers send progress events to the main process, which owns the display.

Ctrl-C: workers ignore the terminal's SIGINT (from their start); the main process catches it
(or SIGTERM) and sends each worker SIGTERM once. The worker notes it (tuner.runtime.interrupt):
its running trial stops at once while it computes, or after the write it is doing, stored as
failed ("interrupted") as in a single-process run; never in the middle of a database write. A
worker whose main process is gone (killed) notices within a second and stops the same way,
instead of training on alone.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import queue
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import optuna
import torch

from tuner.errors import TunerError
from tuner.execution.budget import Budget
from tuner.execution.cohorts import CohortRunner
from tuner.runtime import interrupt
from tuner.runtime.collector import LongLivedHeap
from tuner.runtime.logs import quiet_libraries
from tuner.storage.opening import written
from tuner.storage.stale import fail_dead_trials
from tuner.training.device import worker_devices
from tuner.trial.events import Forward, Listener, deliver

log = logging.getLogger(__name__)

def _told_to_stop(signum: int, frame: Any) -> None:
    """SIGTERM in a worker: the running trial stops now if it is computing, else once what it
    writes is written (tuner.runtime.interrupt)."""
    stop = KeyboardInterrupt()
    interrupt.request(stop)
    interrupt.raise_if_computing(stop)


def _watch_parent(parent: int, events: Any) -> None:
    """Stop this worker when the main process is gone (killed: it could not tell us)."""
    while os.getppid() == parent:
        time.sleep(1.0)
    events.cancel_join_thread()  # nobody reads the events now: do not wait on them at exit
    interrupt.request(KeyboardInterrupt())


def _lost_worker(study: optuna.Study, index: int, exitcode: int | None) -> None:
    """A worker ended without a word (SIGKILL, the out-of-memory killer): its running trial is
    failed now, not after the heartbeat's grace, and the other workers go on."""
    how = f"was killed ({signal.Signals(-exitcode).name})" if exitcode and exitcode < 0 else \
        f"ended with exit code {exitcode}"
    failed = fail_dead_trials(study)
    what = f"its trial {', '.join(map(str, failed))} is stored as failed" if failed else "it was between trials"
    log.warning("worker %d %s; %s; the other workers go on", index, how, what)


def _worker(index: int, prepare: Callable[..., Any], options: Any, budget: int | None, deadline: float | None,
            threads: int | None, tickets: Any, events: Any, parent: int) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the main process decides; see the module doc
    signal.signal(signal.SIGTERM, _told_to_stop)
    threading.Thread(target=_watch_parent, args=(parent, events), name="tuner-watch-parent", daemon=True).start()
    quiet_libraries()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        # Its sampler draws from the seed plus its first trial's number: workers draw apart.
        prepared = prepare(options, listener=Forward(events), record=False)
        prepared.objective.deadline = deadline

        def finished(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            events.put(("finished", trial))

        with LongLivedHeap() as heap, written(prepared.location):
            callbacks = [prepared.objective.after_trial, finished, heap]
            # The study's one ask/tell loop, on the budget all workers share.
            runner = CohortRunner(prepared.study, prepared.objective, options.cohort_size, callbacks)
            runner.run(Budget(budget, deadline, count=tickets))
        interrupt.check()
    except KeyboardInterrupt:
        events.put(("stopped", index))
        return
    except TunerError as e:
        events.put(("error", index, str(e)))
        return
    except Exception as e:  # a worker must not die silently: the main process reports it
        events.put(("error", index, f"worker {index}: {type(e).__name__}: {e}"))
        return
    events.put(("done", index))


class _Watch:
    """The main process's side: worker events to the display and callbacks, and who has ended."""

    def __init__(self, study: optuna.Study, workers: list[Any], listener: Listener | None,
                 callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]]) -> None:
        self.study, self.workers, self.listener, self.callbacks = study, workers, listener, callbacks
        self.errors: list[str] = []
        self.ended: set[int] = set()
        self.interrupted: KeyboardInterrupt | None = None

    def handle(self, events: Any) -> None:
        """One event (or, after a quiet 0.2 s, a look for workers killed without a word)."""
        try:
            event = events.get(timeout=0.2)
        except queue.Empty:
            for i, w in enumerate(self.workers):
                if i not in self.ended and not w.is_alive():
                    self.ended.add(i)
                    _lost_worker(self.study, i, w.exitcode)
            return
        if deliver(event, self.listener):
            return
        kind = event[0]
        if kind == "finished":
            for callback in self.callbacks:
                callback(self.study, event[1])
        elif kind == "error":
            self.ended.add(event[1])
            self.errors.append(event[2])
        elif kind in ("done", "stopped"):
            self.ended.add(event[1])

    def stop(self, stop: KeyboardInterrupt) -> None:
        """The first stop is sent to every worker still running, once."""
        if self.interrupted is not None:
            return
        self.interrupted = stop
        for i, w in enumerate(self.workers):
            if i not in self.ended and w.is_alive():
                os.kill(w.pid, signal.SIGTERM)


def worker_options(options: Any, jobs: int, trials: int | None) -> list[Any]:
    """Each worker's options: the shared budget, and its own device in turn over ``--device``'s
    (:func:`tuner.training.device.worker_devices`: every GPU of the machine for ``cuda``)."""
    return [replace(options, trials=trials, device=device) for device in worker_devices(options.device, jobs)]


def run_parallel(
    options: Any, study: optuna.Study, jobs: int, trials: int | None, timeout: float | None,
    prepare: Callable[..., Any], listener: Listener | None = None,
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
    device_type: str = "cpu", closed: Callable[[], bool] | None = None,
) -> None:
    """Run ``trials`` new trials (or until ``timeout``) in ``jobs`` worker processes.

    ``closed``: asked after each event; once it says True, no worker takes another trial (the
    running ones finish): how ``--trials auto`` stops workers.

    ``options`` are the :class:`~tuner.study.options.OptimizeOptions` the study was prepared
    with, and ``prepare`` is :func:`tuner.study.prepare.prepare_study`, which each worker calls
    with them (passed in, so that the workers need not import what prepares the main process).
    Raises KeyboardInterrupt after the workers have stopped when interrupted, and
    :class:`TunerError` with a worker's message when one could not run.
    """
    ctx = mp.get_context("spawn")  # CUDA cannot be used in a forked child
    tickets = ctx.Value("i", 0)  # the trials taken, by every worker: one budget
    events = ctx.Queue()
    deadline = None if timeout is None else time.time() + timeout
    shared = Budget(trials, deadline, count=tickets)
    threads = None
    if device_type == "cpu":  # share the cores instead of oversubscribing them
        threads = max(1, (os.cpu_count() or 1) // jobs)
    workers = [ctx.Process(target=_worker, name=f"tuner-worker-{i}", daemon=True,
                           args=(i, prepare, chosen, trials, deadline, threads, tickets, events, os.getpid()))
               for i, chosen in enumerate(worker_options(options, jobs, trials))]
    # A worker takes seconds to import torch before _worker can ignore SIGINT itself; started
    # with SIGINT ignored, it ignores the terminal's Ctrl-C from its first instruction (an
    # ignored signal stays ignored across exec). Ctrl-C in these few milliseconds is lost.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for w in workers:
            w.start()
    finally:
        signal.signal(signal.SIGINT, previous)
    watch = _Watch(study, workers, listener, callbacks)
    while len(watch.ended) < jobs:
        try:
            watch.handle(events)
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (tuner.runtime.interrupt.Terminated)
            watch.stop(e)
        if closed is not None and closed():
            shared.close()
    errors, interrupted = watch.errors, watch.interrupted
    for w in workers:
        w.join()
    if interrupted is not None:
        raise interrupted
    if errors:
        raise TunerError(errors[0])
