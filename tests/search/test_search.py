"""The search: trials drawn around the reference (and a bad one left behind), pruning that waits
out warm-up and learning-rate drops, and ``--trials auto`` stopping at noise."""

from __future__ import annotations

import math
import statistics

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from tuner.contract import Hyperparameters
from tuner.search import (
    DEFAULT_SPACE,
    PriorSampler,
    SchedulePruner,
    StopAtNoise,
    auto_warmup,
    draw_around,
    fixed_params_for,
    lr_step,
    make_pruner,
    make_sampler,
    sample,
    standard_error,
    stop_reason,
)
from tuner.search.prior import LR_FACTOR, centre_probability, left_behind
from tuner.search.pruning import lowered_lately
from tuner.storage import locate, records, storage_for
from tuner.trial import enqueue_reference

REFERENCE = Hyperparameters(lr=0.01, batch_size=64, optimizer="sgd", momentum=0.9, weight_decay=0.0,
                            scheduler="step", step_size=5, step_gamma=0.5)
PRIOR = fixed_params_for(REFERENCE, DEFAULT_SPACE)
LR_RANGE = FloatDistribution(1e-5, 1e-1, log=True)  # DEFAULT_SPACE's


def _study(tmp_path, name: str, sampler, pruner=None) -> optuna.Study:
    storage = storage_for(locate("s", db=str(tmp_path / f"{name}.db")), create=True)
    return optuna.create_study(storage=storage, study_name="s", direction="maximize", sampler=sampler,
                               pruner=pruner or optuna.pruners.NopPruner())


def _peak_at(best_lr: float):
    """A smooth objective with its peak at ``lr = best_lr``: four decades either side lose ~1."""
    def objective(trial: optuna.Trial) -> float:
        values = sample(trial, DEFAULT_SPACE)
        return 1.0 - abs(math.log10(values["lr"]) - math.log10(best_lr)) / 4
    return objective


def _lr_distance(study: optuna.Study, trials: slice) -> float:
    drawn = [t for t in study.trials[trials] if "lr" in t.params]
    return sum(abs(math.log10(t.params["lr"]) - math.log10(REFERENCE.lr)) for t in drawn) / len(drawn)


def test_early_trials_are_drawn_around_the_reference_and_a_seeded_study_draws_them_again(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    studies = []
    for name, prior in (("prior", PRIOR), ("again", PRIOR), ("plain", None)):
        study = _study(tmp_path, name, make_sampler("tpe", 3, prior=prior, val_examples=500))
        enqueue_reference(study, REFERENCE, DEFAULT_SPACE)
        study.optimize(_peak_at(REFERENCE.lr), n_trials=9)
        studies.append(study)
    prior, again, plain = studies
    assert [t.params for t in prior.trials] == [t.params for t in again.trials]  # reproducible
    drawn = [t for t in prior.trials if t.user_attrs.get(records.DRAWN) in (records.PRIOR, records.LR_STEP)]
    assert len(drawn) >= 3, "with a good reference most early trials come from the prior"
    assert not any(records.DRAWN in t.user_attrs for t in plain.trials)
    # TPE's 10 start-up trials are uniform over 4 decades (mean distance ~1.3 decades from 0.01)
    assert _lr_distance(prior, slice(1, None)) < 0.75 * _lr_distance(plain, slice(1, None))
    assert prior.best_value >= plain.best_value


def test_the_draws_around_a_centre_go_as_far_as_asked():
    """The search benchmark varies the prior's reach (--prior-spread, --prior-keep): a draw keeps a
    categorical choice as often as asked and a numeric one within the asked share of its range."""
    rng = np.random.default_rng(0)
    batch = CategoricalDistribution([32, 64, 128, 256, 512])
    kept = [draw_around(rng, 64, batch, keep_choice=k) == 64 for k in (1.0, 0.0) for _ in range(400)]
    assert all(kept[:400]) and 0.1 < statistics.mean(kept[400:]) < 0.3  # uniform: 1 in 5

    def decades_off(spread: float) -> list[float]:  # LR_RANGE spans 4 decades; the centre is 0.01
        return [abs(math.log10(draw_around(rng, 0.01, LR_RANGE, spread=spread)) + 2) for _ in range(400)]

    assert max(decades_off(0.02)) < 0.4  # sd 0.08 decades: 5 sd
    assert statistics.mean(decades_off(0.3)) > 0.6  # sd 1.2 decades, clipped at the range's ends


@pytest.mark.parametrize(("peak", "walked"), [
    (0.09, [0.03, 0.09]),  # up while it gains, until the range ends (0.27 > 0.1)
    (0.001, [0.03, 0.01 / 3, 0.01 / 9, 0.01 / 27]),  # up loses: back down once, on while it gains
    (0.01, [0.03, 0.01 / 3]),  # the reference's rate was right: one step each way, then done
])
def test_the_learning_rate_is_walked_from_the_reference_first(tmp_path, peak, walked):
    """The reference's rate times or divided by LR_FACTOR, one ordinary trial a step, the other
    settings the reference's; then the draws around it centre on the best rate found."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = _study(tmp_path, f"walk{peak}", make_sampler("tpe", 0, prior=PRIOR, val_examples=500))
    enqueue_reference(study, REFERENCE, DEFAULT_SPACE)
    study.optimize(_peak_at(peak), n_trials=len(walked) + 4)
    steps = [t for t in study.trials if t.user_attrs.get(records.DRAWN) == records.LR_STEP]
    assert [t.number for t in steps] == list(range(1, len(walked) + 1))
    assert [t.params["lr"] for t in steps] == pytest.approx(walked)
    for t in steps:  # the reference but for its rate
        assert {k: v for k, v in t.params.items() if k in PRIOR and k != "lr"} == \
               {k: v for k, v in PRIOR.items() if k != "lr"}
    best_lr = max([study.trials[0], *steps], key=lambda t: t.value).params["lr"]
    around = [t.params["lr"] for t in study.trials if t.user_attrs.get(records.DRAWN) == records.PRIOR]
    assert around, "draws around the reference follow the walk"
    assert statistics.median(abs(math.log10(lr / best_lr)) for lr in around) < 0.75  # centred on the best rate


def _trial(number: int, value: float | None, lr: float, attrs: dict, state=TrialState.COMPLETE,
           history: list[float] | None = None) -> optuna.trial.FrozenTrial:
    t = create_trial(state=state, value=value if state == TrialState.COMPLETE else None, params={"lr": lr},
                     distributions={"lr": LR_RANGE},
                     user_attrs={**attrs, records.HISTORY: [{"val_accuracy": a} for a in history or []]})
    t.number = number
    return t


def test_the_walk_goes_down_first_after_a_reference_that_peaked_and_waits_for_a_running_step():
    distribution = LR_RANGE
    peaked = _trial(0, 0.9, 0.01, {records.REFERENCE: True}, history=[0.8, 0.92, 0.9])
    rising = _trial(0, 0.9, 0.01, {records.REFERENCE: True}, history=[0.8, 0.85, 0.9])
    assert lr_step([peaked], 0.01, distribution) == pytest.approx(0.01 / LR_FACTOR)
    assert lr_step([rising], 0.01, distribution) == pytest.approx(0.01 * LR_FACTOR)
    running = _trial(1, None, 0.03, {records.DRAWN: records.LR_STEP}, state=TrialState.RUNNING)
    # a second trial at a time (--jobs, a cohort) takes the first step the other way at once
    assert lr_step([rising, running], 0.01, distribution) == pytest.approx(0.01 / LR_FACTOR)
    other = _trial(2, None, 0.01 / LR_FACTOR, {records.DRAWN: records.LR_STEP}, state=TrialState.RUNNING)
    assert lr_step([rising, running, other], 0.01, distribution) is None  # then one step at a time
    pruned = _trial(1, None, 0.03, {records.DRAWN: records.LR_STEP}, state=TrialState.PRUNED)
    assert lr_step([rising, pruned], 0.01, distribution) == pytest.approx(0.01 / LR_FACTOR)  # it lost: turn
    unfinished = _trial(0, None, 0.01, {records.REFERENCE: True}, state=TrialState.RUNNING)
    assert lr_step([unfinished], 0.01, distribution) is None  # no walk before the reference's result


def test_the_walk_starts_from_a_reference_that_was_interrupted_and_run_again():
    interrupted = _trial(0, None, 0.01, {records.REFERENCE: True}, state=TrialState.FAIL)
    again = _trial(1, 0.9, 0.01, {records.REFERENCE: True}, history=[0.8, 0.85, 0.9])
    assert lr_step([interrupted, again], 0.01, LR_RANGE) == pytest.approx(0.01 * LR_FACTOR)


@pytest.mark.parametrize(("up", "down", "then"), [
    (0.95, 0.5, 0.01 * LR_FACTOR ** 2),  # up won, down lost: on up, the losing side set aside
    (0.5, 0.95, 0.01 / LR_FACTOR ** 2),  # down won: on down
    (0.96, 0.95, 0.01 * LR_FACTOR ** 2),  # both won, up more: on up
    (0.95, 0.96, 0.01 / LR_FACTOR ** 2),  # both won, down more: on down
    (0.5, 0.6, None),  # both lost: the reference's rate stands
])
def test_a_first_step_taken_both_ways_goes_on_the_winning_way(up, down, then):
    reference = _trial(0, 0.9, 0.01, {records.REFERENCE: True}, history=[0.8, 0.85, 0.9])
    steps = [_trial(1, up, 0.01 * LR_FACTOR, {records.DRAWN: records.LR_STEP}),
             _trial(2, down, 0.01 / LR_FACTOR, {records.DRAWN: records.LR_STEP})]
    step = lr_step([reference, *steps], 0.01, LR_RANGE)
    assert step == (None if then is None else pytest.approx(then))


def test_a_prior_that_loses_is_left_behind():
    def finished(number: int, value: float, prior: bool) -> optuna.trial.FrozenTrial:
        attrs = {records.DRAWN: records.PRIOR} if prior else {}
        if number == 0:
            attrs = {records.REFERENCE: True}
        t = create_trial(state=TrialState.COMPLETE, value=value, user_attrs=attrs)
        t.number = number
        return t

    bad_reference = [finished(0, 0.11, True)]
    assert left_behind(bad_reference, 500) is None and centre_probability(bad_reference) == pytest.approx(4 / 5)
    beaten = [*bad_reference, finished(1, 0.95, False), finished(2, 0.5, False)]
    assert left_behind(beaten, 500).number == 1  # the centre moves to the best trial
    # within one standard error of the prior's best: not beaten
    close = [finished(0, 0.95, True), finished(1, 0.95 + 0.5 * standard_error(0.95, 500), False)]
    assert left_behind(close, 500) is None


def test_a_bad_reference_costs_little(tmp_path):
    """The reference's lr a thousand times too small: a study drawn around it still finds the peak,
    drawing around the best trial once one beat the reference."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    bad = Hyperparameters(**{**REFERENCE.as_dict(), "lr": 1e-5})
    bests = {}
    for name, prior in (("bad", fixed_params_for(bad, DEFAULT_SPACE)), ("none", None)):
        study = _study(tmp_path, name, make_sampler("tpe", 5, prior=prior, val_examples=500))
        enqueue_reference(study, bad, DEFAULT_SPACE)
        study.optimize(_peak_at(0.01), n_trials=16)
        bests[name] = study.best_value
        if prior is not None:
            drawn = [t.user_attrs.get(records.DRAWN) for t in study.trials]
            assert records.AROUND_BEST in drawn
            first = drawn.index(records.AROUND_BEST)
            assert records.PRIOR not in drawn[first:]  # once left behind, the reference stays behind
    assert bests["bad"] >= bests["none"] - 0.1


def test_the_prior_sampler_keeps_what_the_study_queued(tmp_path):
    sampler = PriorSampler(optuna.samplers.TPESampler(seed=0), PRIOR, 0, 500)
    study = _study(tmp_path, "queued", sampler)
    enqueue_reference(study, REFERENCE, DEFAULT_SPACE)
    study.optimize(_peak_at(0.01), n_trials=1)
    assert study.trials[0].params["lr"] == REFERENCE.lr and records.DRAWN not in study.trials[0].user_attrs


def _history(lrs: list[float], lr_next: float | None = None) -> list[dict[str, float]]:
    rows = [{"epoch": i + 1, "lr": lr, "val_accuracy": 0.1} for i, lr in enumerate(lrs)]
    rows[-1]["lr_next"] = lr_next if lr_next is not None else lrs[-1]
    return rows


def test_a_lowered_learning_rate_is_given_time_to_act():
    assert lowered_lately(_history([0.1, 0.1, 0.1], lr_next=0.01), 2)  # lowered at this epoch's end
    assert lowered_lately(_history([0.1, 0.1, 0.01]), 2)  # first epoch at the lower rate
    assert lowered_lately(_history([0.1, 0.01, 0.01]), 2)  # second
    assert not lowered_lately(_history([0.1, 0.01, 0.01, 0.01]), 2)  # settled
    assert not lowered_lately(_history([0.1, 0.1, 0.1]), 2)
    # lowered at every epoch (plateau, patience 0, a trial that does not learn): waited out once
    assert lowered_lately(_history([0.1], lr_next=0.05), 2)
    assert not lowered_lately(_history([0.1, 0.05, 0.025, 0.0125], lr_next=0.00625), 2)
    # StepLR every 3 epochs: each drop is waited out
    assert lowered_lately(_history([0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025]), 2)
    assert [auto_warmup(e) for e in (3, 4, 6, 8, 9, 10, 20, 40)] == [0, 1, 1, 1, 1, 2, 3, 7]


def test_the_schedule_pruner_waits_then_lets_the_median_decide(tmp_path):
    """Trials far below the median: pruned only after the warm-up, and not right after a drop."""
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = _study(tmp_path, "prune", optuna.samplers.RandomSampler(seed=0),
                   SchedulePruner(optuna.pruners.MedianPruner(n_startup_trials=2), warmup=2))
    for _ in range(2):
        trial = study.ask()
        for step in range(6):
            trial.report(0.9, step)
        study.tell(trial, 0.9)

    def pruned_at(lrs: list[float]) -> int | None:
        trial = study.ask()
        history = []
        for step, lr in enumerate(lrs):
            history.append({"epoch": step + 1, "lr": lr, "val_accuracy": 0.1,
                            "lr_next": lrs[step + 1] if step + 1 < len(lrs) else lr})
            trial.set_user_attr(records.HISTORY, history)
            trial.report(0.1, step)
            if trial.should_prune():
                study.tell(trial, state=TrialState.PRUNED)
                return step + 1
        study.tell(trial, 0.1)
        return None

    assert pruned_at([0.1] * 6) == 3  # after 2 warm-up epochs
    assert pruned_at([0.1, 0.1, 0.01, 0.01, 0.01, 0.01]) == 5  # lowered after epoch 2: 3 and 4 are its time
    assert make_pruner("none", 10, 3, None).__class__ is optuna.pruners.NopPruner
    assert make_pruner("median", 10, 3, None).warmup == 2 and make_pruner("median", 10, 3, 0).warmup == 0


def _finished(values: list[float | None]) -> list[optuna.trial.FrozenTrial]:
    trials = []
    for number, value in enumerate(values):
        t = create_trial(state=TrialState.PRUNED if value is None else TrialState.COMPLETE, value=value,
                         intermediate_values={0: 0.1})
        t.number = number
        trials.append(t)
    return trials


def test_auto_stops_when_the_best_stalls_within_noise_and_goes_on_while_it_rises():
    rising = [0.80, 0.82, 0.84, 0.86, 0.88, 0.90, 0.92, 0.94, 0.96]
    assert stop_reason(_finished(rising), 1000) is None
    stalled = [0.80, 0.95, None, 0.90, 0.951, None, 0.94, 0.952, 0.93]
    reason = stop_reason(_finished(stalled), 1000)
    assert reason is not None and "under one standard error" in reason and "after 9 finished trials" in reason
    assert stop_reason(_finished(stalled[:6]), 1000) is None  # too few to judge
    # the same stall on 50 validation images is noise too; one big jump is not
    assert stop_reason(_finished([*stalled[:-1], 0.999]), 1000) is None


def test_the_callback_stops_an_optuna_study_and_records_why(tmp_path):
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = _study(tmp_path, "auto", optuna.samplers.RandomSampler(seed=0))
    stopper = StopAtNoise(200)
    study.optimize(lambda t: 0.9 + 0.0001 * t.suggest_float("x", 0, 1), n_trials=100, callbacks=[stopper])
    assert len(study.trials) == 8
    assert study.user_attrs[records.STOPPED]["after_trial"] == 7 and stopper.reason
