"""What a finished search says: which hyperparameters mattered, and which best values sit at
the edge of their range (so the range, not the model, may be what stopped the search)."""

from __future__ import annotations

import math
import warnings
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from tuner.storage import records
from tuner.storage.records import ZERO_SWITCH

#: Past this many completed trials importance uses PED-ANOVA (fast) instead of fANOVA (a random forest).
FANOVA_MAX_TRIALS = 200
#: Under this many complete trials an importance ranking is not yet meaningful (said where it is shown).
MEANINGFUL_TRIALS = 10
#: A best value in the outer 5% of its range (log scale for log ranges) is "at the edge".
EDGE = 0.05
_BELOW_ONE = {"dropout", "plateau_factor", "step_gamma"}  # must stay under 1


def shown_name(param: str) -> str:
    """``weight_decay_is_zero`` -> ``weight_decay = 0?``: the switch, by the hyperparameter's name."""
    return f"{param.removesuffix(ZERO_SWITCH)} = 0?" if param.endswith(ZERO_SWITCH) else param


def too_few(trials: int) -> str:
    """What is said of a ranking over fewer than :data:`MEANINGFUL_TRIALS` complete trials."""
    return f"{trials} complete trials are too few for a meaningful ranking (it settles from about {MEANINGFUL_TRIALS})"


def current_importance(study: optuna.Study) -> dict[str, Any] | None:
    """The importance stored when the last run ended (:func:`remember`) while no trial has
    completed since, else computed now (importing Optuna's evaluators imports scikit-learn, slow)."""
    stored = study.user_attrs.get(records.IMPORTANCE)
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    if isinstance(stored, dict) and stored.get("complete") == done and "result" in stored:
        return stored["result"]
    return importance(study)


def remember(study: optuna.Study) -> None:
    """Compute the importance once at the end of a run and store it in the study."""
    done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    study.set_user_attr(records.IMPORTANCE, {"complete": done, "result": importance(study)})


def importance(study: optuna.Study, trials: list[FrozenTrial] | None = None) -> dict[str, Any] | None:
    """``{"evaluator", "trials", "values": {name: share}}``, largest first, or None when fewer than
    two trials completed or nothing varied. Names are the hyperparameters' (see :func:`shown_name`);
    a hyperparameter sampled only sometimes (weight decay when it is not 0) is judged through its
    switch, since importance needs a value in every trial."""
    done = [t for t in (trials if trials is not None else study.get_trials(deepcopy=False))
            if t.state == TrialState.COMPLETE]
    if len(done) < 2:
        return None
    if len(done) > FANOVA_MAX_TRIALS:
        evaluator, name = optuna.importance.PedAnovaImportanceEvaluator(), "PED-ANOVA"
    else:
        evaluator, name = optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA"
    # Names in (nearly) every completed trial: the reference trial asks only for what it sets,
    # a switched-off weight decay has no value; importance needs a value in each trial it uses.
    counts: dict[str, int] = {}
    for t in done:
        for k in t.params:
            counts[k] = counts.get(k, 0) + 1
    params = sorted(k for k, c in counts.items() if c >= 0.9 * len(done) and k in done[-1].distributions)
    used = [t for t in done if all(k in t.params for k in params)]
    if len(used) < 2 or not params:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # PED-ANOVA warns of sparse regimes; the title says which evaluator
            values = optuna.importance.get_param_importances(study, evaluator=evaluator, params=params)
    except (ValueError, RuntimeError):  # every trial had the same params, or none varied
        return None
    if not values:
        return None
    shares = {shown_name(k): float(v) for k, v in sorted(values.items(), key=lambda kv: -kv[1])}
    note = too_few(len(used)) if len(used) < MEANINGFUL_TRIALS else None
    return {"evaluator": name, "trials": len(used), "values": shares, "note": note}


def edge_hints(best: FrozenTrial) -> list[dict[str, Any]]:
    """One hint per searched hyperparameter whose best value sits at an edge of its range, with
    the ``--space`` entry that widens it (none where the range cannot grow: dropout at 0)."""
    hints = []
    for name, dist in best.distributions.items():
        if name.endswith(ZERO_SWITCH) or name not in best.params:
            continue
        value = best.params[name]
        if isinstance(dist, FloatDistribution | IntDistribution) and dist.high > dist.low:
            hint = _range_hint(name, value, dist)
        elif isinstance(dist, CategoricalDistribution):
            hint = _choice_hint(name, value, dist)
        else:
            continue
        if hint is not None:
            hints.append(hint)
    return hints


def _range_hint(name: str, value: float, dist: FloatDistribution | IntDistribution) -> dict[str, Any] | None:
    low, high = dist.low, dist.high
    if dist.log:
        where = (math.log(value) - math.log(low)) / (math.log(high) - math.log(low))
    else:
        where = (value - low) / (high - low)
    integer = isinstance(dist, IntDistribution)
    if where >= 1 - EDGE:
        side = "top"
        new_high = high * 10 if dist.log else high + (high - low)
        if name in _BELOW_ONE:
            new_high = min(new_high, 0.9)
        if new_high <= high:
            return None
        new_low = low
    elif where <= EDGE:
        side = "bottom"
        new_low = low / 10 if dist.log else low - (high - low)
        if new_low < 0 or (dist.log and new_low <= 0):
            return None  # 0 is as low as dropout, patience or cooldown go
        new_high = high
    else:
        return None
    if integer:
        new_low, new_high = int(new_low), int(new_high)
    entry = f"{name}={_num(new_low)}:{_num(new_high)}{':log' if dist.log else ''}"
    return {"name": name, "value": value, "side": side, "range": [low, high], "space": entry,
            "text": f"best {name} {_num(value)} is at the {side} of [{_num(low)}, {_num(high)}]: "
                    f"widen it with --space {entry}"}


def _choice_hint(name: str, value: Any, dist: CategoricalDistribution) -> dict[str, Any] | None:
    """An ordered numeric choice (batch sizes) whose best is its largest or smallest option."""
    options = [c for c in dist.choices if isinstance(c, int | float) and not isinstance(c, bool)]
    if len(options) != len(dist.choices) or len(options) < 3 or value not in (min(options), max(options)):
        return None
    if value == max(options):
        side, grown = "top", [*sorted(options), max(options) * 2]
    else:
        if min(options) <= 1:
            return None
        side, grown = "bottom", [max(1, min(options) // 2), *sorted(options)]
    entry = f"{name}={','.join(_num(o) for o in grown)}"
    return {"name": name, "value": value, "side": side, "range": sorted(options), "space": entry,
            "text": f"best {name} {_num(value)} is the {'largest' if side == 'top' else 'smallest'} choice: "
                    f"try --space {entry}"}


def _num(x: float) -> str:
    return f"{x:g}"
