"""Several trials at once on one device: ``tuner optimize --jobs N``.

A small model cannot keep a GPU (or a many-core CPU) busy: most of a step is Python launching
kernels. N worker processes each train their own trial against the same study database, so the
device interleaves N trials' kernels. Processes, not threads, because the bottleneck is the
Python interpreter of each training loop.

The main process has already created the study (provenance, the queued reference trial) with
:func:`tuner.run.prepare_study`; each worker opens it again the same way, with the same
options, and runs trials until the shared budget of ``--trials`` is spent or ``--timeout``
passes. Workers send progress events to the main process, which owns the display.

Ctrl-C: workers ignore the terminal's SIGINT (from their start); the main process catches it
(or SIGTERM) and sends each worker SIGTERM once. The worker notes it (tuner.interrupt) and its
running trial stops at the next batch, stored as failed ("interrupted") as in a single-process
run; never in the middle of a database write. A worker whose main process is gone (killed)
notices within a second and stops the same way, instead of training on alone.
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

from tuner import interrupt
from tuner.engine import EpochResult
from tuner.errors import TrialFailed, TunerError, quiet_libraries
from tuner.heap import LongLivedHeap
from tuner.objective import Listener
from tuner.study import fail_dead_trials, written

log = logging.getLogger(__name__)

MAX_JOBS = 64


class _Forward:
    """Listener in a worker: sends the events to the main process."""

    def __init__(self, events: Any) -> None:
        self.events = events

    def trial_started(self, number: int, hp: dict[str, Any], reference: bool) -> None:
        self.events.put(("started", number, hp, reference))

    def epoch_done(self, number: int, epoch: int, epochs: int, result: EpochResult) -> None:
        self.events.put(("epoch", number, epoch, epochs, result))


def _told_to_stop(signum: int, frame: Any) -> None:
    """SIGTERM in a worker: the running trial stops at its next batch (tuner.interrupt)."""
    interrupt.request(KeyboardInterrupt())


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


def _claim(tickets: Any, budget: int | None) -> bool:
    """Take one trial from the shared budget; False when it is spent."""
    with tickets.get_lock():
        if budget is not None and tickets.value >= budget:
            return False
        tickets.value += 1
        return True


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
        prepared = prepare(options, listener=_Forward(events), record=False)

        def finished(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            events.put(("finished", trial))

        with LongLivedHeap() as heap, written(prepared.location):
            while (interrupt.pending() is None and (deadline is None or time.time() < deadline)
                   and _claim(tickets, budget)):
                prepared.study.optimize(prepared.objective, n_trials=1, catch=(TrialFailed,),
                                        callbacks=[prepared.objective.after_trial, finished, heap],
                                        gc_after_trial=False)
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


def run_parallel(
    options: Any, study: optuna.Study, jobs: int, trials: int | None, timeout: float | None,
    prepare: Callable[..., Any], listener: Listener | None = None,
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
    device_type: str = "cpu",
) -> None:
    """Run ``trials`` new trials (or until ``timeout``) in ``jobs`` worker processes.

    ``options`` are the :class:`~tuner.run.OptimizeOptions` the study was prepared with, and
    ``prepare`` is :func:`tuner.run.prepare_study`, which each worker calls with them (passed
    in, so that this module does not import the one that calls it).
    Raises KeyboardInterrupt after the workers have stopped when interrupted, and
    :class:`TunerError` with a worker's message when one could not run.
    """
    ctx = mp.get_context("spawn")  # CUDA cannot be used in a forked child
    tickets = ctx.Value("i", 0)
    events = ctx.Queue()
    deadline = None if timeout is None else time.time() + timeout
    threads = None
    if device_type == "cpu":  # share the cores instead of oversubscribing them
        threads = max(1, (os.cpu_count() or 1) // jobs)
    worker_options = replace(options, trials=trials)
    workers = [ctx.Process(target=_worker, name=f"tuner-worker-{i}", daemon=True,
                           args=(i, prepare, worker_options, trials, deadline, threads, tickets, events, os.getpid()))
               for i in range(jobs)]
    # A worker takes seconds to import torch before _worker can ignore SIGINT itself; started
    # with SIGINT ignored, it ignores the terminal's Ctrl-C from its first instruction (an
    # ignored signal stays ignored across exec). Ctrl-C in these few milliseconds is lost.
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for w in workers:
            w.start()
    finally:
        signal.signal(signal.SIGINT, previous)
    errors: list[str] = []
    ended: set[int] = set()
    interrupted: KeyboardInterrupt | None = None
    while len(ended) < jobs:
        try:
            try:
                event = events.get(timeout=0.2)
            except queue.Empty:
                for i, w in enumerate(workers):
                    if i not in ended and not w.is_alive():  # killed without a word
                        ended.add(i)
                        _lost_worker(study, i, w.exitcode)
                continue
            kind = event[0]
            if kind == "started" and listener is not None:
                listener.trial_started(*event[1:])
            elif kind == "epoch" and listener is not None:
                listener.epoch_done(*event[1:])
            elif kind == "finished":
                for callback in callbacks:
                    callback(study, event[1])
            elif kind == "error":
                ended.add(event[1])
                errors.append(event[2])
            elif kind in ("done", "stopped"):
                ended.add(event[1])
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (tuner.cli.Terminated)
            if interrupted is None:
                interrupted = e
                for i, w in enumerate(workers):
                    if i not in ended and w.is_alive():
                        os.kill(w.pid, signal.SIGTERM)
    for w in workers:
        w.join()
    if interrupted is not None:
        raise interrupted
    if errors:
        raise TunerError(errors[0])
