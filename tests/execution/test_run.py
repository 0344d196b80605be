"""tuner.study as a library: what a process that calls run_study keeps after it returns."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

import pytest

from tuner.execution import run_study
from tuner.runtime import collector_paused
from tuner.study import OptimizeOptions, prepare_study


class Node:
    """Something that can sit in a reference cycle, which only the collector frees."""

    def __init__(self) -> None:
        self.other: Node | None = None


def digits_study(tmp_path: Path):
    options = OptimizeOptions(plugin="mlp-digits", db=str(tmp_path / "s.db"), epochs=1, trials=2,
                              data_dir=str(tmp_path / "data"))
    return prepare_study(options)


def test_the_start_up_heap_is_frozen_while_trials_run_and_given_back_after(tmp_path):
    assert gc.get_freeze_count() == 0
    prepared = digits_study(tmp_path)
    frozen_during, freed_during = [], []

    def after_each_trial(study, trial):
        frozen_during.append(gc.get_freeze_count())
        # Garbage made during the study is still collected: the freeze covers only what existed before.
        a, b = Node(), Node()
        a.other, b.other = b, a
        dead = weakref.ref(a)
        del a, b
        gc.collect()
        freed_during.append(dead() is None)

    run_study(prepared, 2, None, callbacks=[after_each_trial])
    # torch, Optuna, SQLAlchemy and the data: hundreds of thousands of objects out of the collector's walk
    assert len(frozen_during) == 2 and min(frozen_during) > 50_000
    assert freed_during == [True, True]
    assert gc.get_freeze_count() == 0  # the caller's process is as it was


def test_what_a_command_made_while_starting_is_frozen_once_then_given_back_with_its_garbage(tmp_path):
    """As `tuner optimize` starts: no collection walks start-up's objects, neither while they
    are made nor on the way to the first trial; start-up's garbage is freed when the study ends."""
    passes = []

    def count(phase, info):
        if phase == "stop":
            passes.append(info["generation"])

    with collector_paused():
        prepared = digits_study(tmp_path)
        a, b = Node(), Node()  # start-up garbage: a cycle
        a.other, b.other = b, a
        dead = weakref.ref(a)
        del a, b
    frozen_at_start = gc.get_freeze_count()
    assert gc.isenabled() and frozen_at_start > 50_000
    first_trial = []
    gc.callbacks.append(count)
    try:
        run_study(prepared, 2, None, callbacks=[lambda study, trial: first_trial.append(list(passes))])
    finally:
        gc.callbacks.remove(count)
    # No full pass before trial 0 ended (young-object passes are the study's own), and the
    # start-up cycle waited, frozen, instead of being walked for.
    assert 2 not in first_trial[0] and dead() is not None
    assert gc.get_freeze_count() == 0  # the whole heap given back when the study ended
    gc.collect()
    assert dead() is None


def test_the_heap_is_given_back_when_the_study_is_interrupted(tmp_path):
    prepared = digits_study(tmp_path)

    def ctrl_c(study, trial):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_study(prepared, 2, None, callbacks=[ctrl_c])
    assert gc.get_freeze_count() == 0


def test_a_process_that_freezes_its_own_heap_is_left_alone(tmp_path):
    prepared = digits_study(tmp_path)
    gc.freeze()  # as a pre-forking server does
    try:
        mine = gc.get_freeze_count()
        run_study(prepared, 1, None)
        # Not unfrozen by tuner, nothing added (frozen objects still die when no longer referenced).
        assert 0.9 * mine < gc.get_freeze_count() <= mine
    finally:
        gc.unfreeze()
