"""The search benchmark's peers from other libraries, each at its own defaults, each driving the same
training as tuner's searchers (benchmarks/search.py imports this module when they are asked for;
``pip install -e '.[bench]'`` installs them).

    ray-asha        Ray Tune: random search with the ASHA scheduler (grace 1 epoch, max the
                    trial's epochs, its default reduction factor 4), the reference as the first
                    point (points_to_evaluate), one trial at a time so epochs count in order.
    neps-priorband  NePS PriorBand (Hyperband base, eta 3) with the reference as the prior of
                    every parameter it sets (confidence "medium"), sampled first at full fidelity;
                    a promoted configuration goes on training from where it stopped.

The space is tuner's, parameter for parameter as Optuna samples it (``weight_decay_is_zero`` and
the range, the plateau settings); the reference itself trains as tuner's reference does
(``run_reference``), whatever the peer's first configuration holds.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import optuna

from tuner.contract import Choice, FloatRange, IntRange
from tuner.search import build_space, fixed_params_for, hyperparameters, sample
from tuner.storage import ZERO_SWITCH
from tuner.training import Trainer, start_training, trial_seed

PEERS = ("ray-asha", "neps-priorband")


def trainer_for(setup: Any, params: dict[str, Any] | None, number: int) -> Trainer:
    """Trial ``number`` of the study: the reference when ``params`` is None."""
    space = build_space(setup.arch)
    # Optuna's FixedTrial answers tuner's own sampling with the peer's values (switches included)
    hp = hyperparameters({}, base=setup.arch.reference) if params is None else \
        hyperparameters(sample(optuna.trial.FixedTrial(params), space))
    return start_training(setup.arch, setup.data, hp, trial_seed(setup.seed, number))


def _reference_params(setup: Any) -> dict[str, Any]:
    return fixed_params_for(setup.arch.reference, build_space(setup.arch))


def run_ray_asha(setup: Any, budget: int) -> list[tuple[int, float]]:
    """Ray Tune ASHA on a local Ray; returns (epochs so far, score) as each trial ended."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.basic_variant import BasicVariantGenerator

    space = build_space(setup.arch)
    param_space: dict[str, Any] = {"reference": False}
    for name, param in space.items():
        if isinstance(param, Choice):
            param_space[name] = tune.choice(list(param.options))
        elif isinstance(param, IntRange):
            param_space[name] = tune.randint(param.low, param.high + 1)
        elif isinstance(param, FloatRange):
            if param.or_zero:
                param_space[f"{name}{ZERO_SWITCH}"] = tune.choice([False, True])
            param_space[name] = (tune.loguniform if param.log else tune.uniform)(param.low, param.high)
    reference = {**_reference_params(setup), "reference": True}

    class Budget(tune.Stopper):
        """Every reported epoch counts; the run stops once ``budget`` are trained."""

        def __init__(self) -> None:
            self.epochs = 0

        def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
            self.epochs += 1
            return False

        def stop_all(self) -> bool:
            return self.epochs >= budget

    def trainable(config: dict[str, Any], setup: Any) -> None:
        import torch

        torch.set_num_threads(int(os.environ.get("TUNER_BENCH_THREADS", "2")))
        params = None if config["reference"] else {k: v for k, v in config.items() if k not in ("reference",)}
        trainer = trainer_for(setup, params, int(tune.get_context().get_trial_id().split("_")[-1]))
        for _ in range(setup.epochs):
            result = trainer.epoch()
            tune.report({"val_accuracy": result.val_accuracy})

    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    try:
        storage = tempfile.mkdtemp(prefix="tuner-ray-")
        tuner = tune.Tuner(
            tune.with_parameters(trainable, setup=setup),
            param_space=param_space,
            tune_config=tune.TuneConfig(
                metric="val_accuracy", mode="max", num_samples=budget,
                scheduler=ASHAScheduler(max_t=setup.epochs, grace_period=1),
                search_alg=BasicVariantGenerator(points_to_evaluate=[reference], random_state=setup.seed),
                max_concurrent_trials=1,
            ),
            run_config=tune.RunConfig(stop=Budget(), storage_path=storage, verbose=0),
        )
        grid = tuner.fit()
        runs = sorted((r for r in grid if r.metrics_dataframe is not None and len(r.metrics_dataframe)),
                      key=lambda r: r.metrics_dataframe["timestamp"].iloc[0])
        ends, trained = [], 0
        for r in runs:
            frame = r.metrics_dataframe
            trained += len(frame)
            if trained <= budget:
                ends.append((trained, float(frame["val_accuracy"].iloc[-1])))
        return ends
    finally:
        ray.shutdown()


def run_neps_priorband(setup: Any, budget: int) -> list[tuple[int, float]]:
    """NePS PriorBand through its ask-and-tell interface; (epochs so far, score) per evaluation."""
    import neps

    space = build_space(setup.arch)
    prior = _reference_params(setup)
    elements: dict[str, Any] = {}
    for name, param in space.items():
        if isinstance(param, Choice):
            elements[name] = neps.HPOCategorical(list(param.options), prior=prior.get(name),
                                                 prior_confidence="medium")
        elif isinstance(param, IntRange):
            elements[name] = neps.HPOInteger(param.low, param.high, prior=prior.get(name), prior_confidence="medium")
        elif isinstance(param, FloatRange):
            if param.or_zero:
                switch = f"{name}{ZERO_SWITCH}"
                elements[switch] = neps.HPOCategorical([False, True], prior=prior.get(switch),
                                                       prior_confidence="medium")
            elements[name] = neps.HPOFloat(param.low, param.high, log=param.log, prior=prior.get(name),
                                           prior_confidence="medium")
    elements["epochs"] = neps.HPOInteger(1, setup.epochs, is_fidelity=True)
    optimizer = neps.AskAndTell(neps.algorithms.priorband(neps.SearchSpace(elements),
                                                          sample_prior_first="highest_fidelity"))
    trainers: dict[str, tuple[Trainer, int]] = {}
    ends, trained, number = [], 0, 0
    while trained < budget:
        trial = optimizer.ask()
        config, previous = trial.config, trial.metadata.previous_trial_id
        if previous in trainers:
            trainer, done = trainers.pop(previous)
        else:
            params = None if number == 0 else {k: v for k, v in config.items() if k != "epochs"}
            trainer, done = trainer_for(setup, params, number), 0
            number += 1
        result = None
        for _ in range(int(config["epochs"]) - done):
            result = trainer.epoch()
            trained += 1
        score = result.val_accuracy if result is not None else 0.0
        trainers[trial.metadata.id] = (trainer, int(config["epochs"]))
        optimizer.tell(trial, 1.0 - score)
        if trained <= budget and result is not None:
            ends.append((trained, score))
    return ends
