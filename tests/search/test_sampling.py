"""The snapshot sampler: one storage read per trial, and exactly the draws of the sampler it wraps."""

from __future__ import annotations

import optuna
import pytest

from tuner.search import DEFAULT_SPACE, SnapshotSampler, make_pruner, make_sampler, sample
from tuner.storage import locate, storage_for


def _objective(trial: optuna.Trial) -> float:
    values = sample(trial, DEFAULT_SPACE)  # conditional: plateau_* or step_* by scheduler
    score = -abs(values["lr"] - 0.01) - 0.1 * (values["dropout"] or 0)
    for step in range(3):
        trial.report(score + 0.01 * step, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return score


def _study(tmp_path, name: str, sampler, pruner: str = "median") -> optuna.Study:
    # One study name (Hyperband's brackets hash it), two database files.
    storage = storage_for(locate("s", db=str(tmp_path / f"{name}.db")), create=True)
    return optuna.create_study(storage=storage, study_name="s", direction="maximize", sampler=sampler,
                               pruner=make_pruner(pruner, 3, 3, 0))


@pytest.mark.parametrize("name,pruner", [("tpe", "median"), ("cmaes", "none"), ("tpe", "hyperband")])
def test_same_draws_as_the_wrapped_sampler(tmp_path, name, pruner):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    plain = _study(tmp_path, "plain", make_sampler(name, 7).base, pruner)
    snap = _study(tmp_path, "snap", make_sampler(name, 7), pruner)
    assert isinstance(snap.sampler, SnapshotSampler)
    plain.optimize(_objective, n_trials=25)
    snap.optimize(_objective, n_trials=25)
    assert [t.params for t in snap.trials] == [t.params for t in plain.trials]
    assert [t.state for t in snap.trials] == [t.state for t in plain.trials]


def test_reads_the_trials_once_per_trial(tmp_path, monkeypatch):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    counts = {}
    for name, sampler in [("plain", make_sampler("tpe", 0).base), ("snap", make_sampler("tpe", 0))]:
        study = _study(tmp_path, name, sampler, "none")
        study.optimize(_objective, n_trials=12)  # past TPE's 10 random start-up trials
        backend = study._storage._backend
        read_all = backend._get_trials
        reads = []

        def counted(*a, reads=reads, read_all=read_all, **k):
            reads.append(1)
            return read_all(*a, **k)

        monkeypatch.setattr(backend, "_get_trials", counted)
        trial = study.ask()
        sample(trial, DEFAULT_SPACE)
        study.tell(trial, 0.0)
        counts[name] = len(reads)
    # TPE alone reads the trials for its joint draw and again for each parameter it draws alone;
    # the snapshot reads once when the trial starts (Optuna's ask reads once more for queued trials).
    assert counts["snap"] == 2 and counts["plain"] >= 4, counts


def test_a_batch_size_at_or_over_the_limit_becomes_the_largest_below_it():
    from optuna.distributions import CategoricalDistribution, IntDistribution

    from tuner.search.fits import below

    choices = CategoricalDistribution([32, 64, 128, 256, 512])
    assert below(choices, 512, 256) == 128 and below(choices, 64, 256) == 64
    assert below(choices, 32, 32) == 32  # nothing below: left as drawn (the study stops on it)
    assert below(IntDistribution(16, 512, step=16), 500, 300) == 288
    assert below(IntDistribution(16, 512, log=True), 500, 300) == 299
    assert below(IntDistribution(16, 512), 20, 16) == 20
