"""Importance and edge-of-range hints, on studies built with Optuna's own trial records."""

from __future__ import annotations

import random

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from tuner.after.importance import edge_hints, importance
from tuner.search import parse_entry

SPACE = {"lr": FloatDistribution(1e-5, 0.1, log=True), "batch_size": CategoricalDistribution([32, 64, 128]),
         "dropout": FloatDistribution(0.0, 0.7), "plateau_patience": IntDistribution(0, 3),
         "weight_decay_is_zero": CategoricalDistribution([False, True])}


def trial(value: float, **params) -> optuna.trial.FrozenTrial:
    return optuna.trial.create_trial(value=value, params=params, distributions={k: SPACE[k] for k in params})


def test_a_best_value_at_the_edge_gets_a_hint_that_parses_as_a_space_entry():
    best = trial(0.9, lr=0.098, batch_size=128, dropout=0.0, plateau_patience=3, weight_decay_is_zero=True)
    hints = {h["name"]: h for h in edge_hints(best)}
    assert hints["lr"]["text"] == "best lr 0.098 is at the top of [1e-05, 0.1]: widen it with --space lr=1e-05:1:log"
    assert hints["batch_size"]["space"] == "batch_size=32,64,128,256"
    assert hints["plateau_patience"]["space"] == "plateau_patience=0:6"
    assert "dropout" not in hints  # 0 is as low as dropout goes
    for hint in hints.values():
        parse_entry(hint["space"])  # a user can paste it
    middle = trial(0.9, lr=1e-3, batch_size=64, dropout=0.3, plateau_patience=1)
    assert edge_hints(middle) == []


def test_importance_names_the_hyperparameters_and_ranks_what_moved_the_value():
    study = optuna.create_study(direction="maximize")
    rng = random.Random(0)
    for _ in range(30):
        lr = 10 ** rng.uniform(-5, -1)
        bs = rng.choice([32, 64, 128])
        study.add_trial(trial(1 - abs(lr - 0.01) * 5, lr=lr, batch_size=bs, weight_decay_is_zero=rng.random() < 0.5))
    result = importance(study)
    assert result["evaluator"] == "fANOVA" and result["trials"] == 30
    assert next(iter(result["values"])) == "lr"
    assert set(result["values"]) == {"lr", "batch_size", "weight_decay = 0?"}
    assert importance(optuna.create_study(direction="maximize")) is None
