"""What a finished study says: ``tuner best``'s summary (best vs reference, how sure, weights,
importance, hints) and ``tuner trials``' rows, as the plain dicts ``--json`` prints."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna

from tuner.after import importance
from tuner.search.space import acting
from tuner.storage import records
from tuner.storage.records import TrialView, view
from tuner.storage.weights import find_weights, for_study


def pct(value: float | None) -> str:
    """An accuracy (a fraction) as every command shows it: ``96.53%``, or ``—`` when there is none."""
    return "—" if value is None else f"{100 * value:.2f}%"


def difference(best: float | None, reference: float | None, n: int | None,
               paired: dict[str, int] | None = None) -> dict[str, Any] | None:
    """How sure ``best - reference`` (accuracies on the same ``n`` examples) is.

    Paired when the examples each model alone gets right are known (``only_best``,
    ``only_reference``): SE = sqrt(((b + c) / n - d²) / n). Otherwise the two are treated as
    independent binomials, which overstates the error when they get the same examples right.
    Within noise: the difference is under two standard errors. In percentage points."""
    if best is None or reference is None or not n:
        return None
    d = best - reference
    if paired is not None and paired.get("n") == n:
        var = max((paired["only_best"] + paired["only_reference"]) / n - d * d, 0.0) / n
    else:
        paired = None
        var = (best * (1 - best) + reference * (1 - reference)) / n
    se = math.sqrt(var)
    return {"points": 100 * d, "se_points": 100 * se, "examples": n, "example_points": 100 / n,
            "paired": paired is not None, "within_noise": abs(d) < 2 * se or d == 0}


def best_summary(study: optuna.Study, db_path: Path | None = None) -> dict[str, Any]:
    """What ``tuner best --json`` prints. ``weights`` is a local file that loads with
    ``torch.load(path, weights_only=True)`` (fetched into a cache from an object store), or
    None with the reason under ``weights_artifact.problem``. ``claims`` says in plain sentences
    what the comparison with the reference means (:func:`claims`)."""
    best_frozen = records.best_trial(study)
    best = view(best_frozen)
    ref = records.reference_trial(study)
    ref_view = view(ref) if ref is not None else None
    tests = records.test_accuracies(study)
    store = for_study(study, db_path)
    found = find_weights(best_frozen, store)
    ref_found = find_weights(ref, store) if ref is not None else None
    prov = records.provenance(study)
    val_n, test_n, paired = _examples(study, prov, best, ref_view)
    ref_test = tests.get(ref_view.number) if ref_view else None
    # Studies made before provenance kept it had it in the reference trial's settings.
    source_epochs = prov.get("reference_epochs", (ref_view.hparams if ref_view else {}).get("epochs"))
    summary = {
        "study": study.study_name,
        "plugin": prov.get("plugin"),
        "trial": best.number,
        "value": best.value,
        "params": trained_params(best),
        "epochs": best.history,
        "test_accuracy": tests.get(best.number),
        "weights": str(found.path) if found is not None and found.ok else None,
        "weights_artifact": found.as_dict() if found is not None else None,
        "artifacts": store.shown if store is not None else None,
        "reference_trial": ref_view.number if ref_view else None,
        "reference_value": ref_view.value if ref_view else None,
        "reference_test_accuracy": ref_test,
        "reference_weights": str(ref_found.path) if ref_found is not None and ref_found.ok else None,
        "reference_epochs": {"trained": ref_view.epochs_run if ref_view else None, "source": source_epochs},
        "runner_up": _runner_up(study, best.number),
        "counts": records.state_counts(study),
        "runs": records.runs(study),
        "importance": importance.current_importance(study),
        "hints": [h["text"] for h in importance.edge_hints(best_frozen)],
        "validation_examples": val_n,
        "test_examples": test_n,
        # best - reference in points, its standard error, and whether it is within noise; none
        # when the best is the reference (a trial is not compared with itself)
        "difference": {"validation": None, "test": None},
    }
    if ref_view is not None and ref_view.number != best.number:
        summary["difference"] = {
            "validation": difference(best.value, ref_view.value, val_n, paired.get("validation")),
            "test": difference(tests.get(best.number), ref_test, test_n, paired.get("test")),
        }
    summary["search"] = search_record(study, best_frozen, prov.get("epochs"))
    summary["claims"] = claims(summary)
    return summary


def search_record(study: optuna.Study, best: optuna.trial.FrozenTrial, epochs: int | None) -> dict[str, Any]:
    """What the search did: trials drawn around the reference (``--prior``), the epochs pruning
    spared, why ``--trials auto`` stopped, and the pruning regret (pruned trials that would have
    won: measured by benchmarks/search.py, never during a study, so "not measured" here)."""
    views = [view(t) for t in study.get_trials(deepcopy=False)]
    pruned = [v for v in views if v.state == "PRUNED"]
    trained = sum(v.epochs_run for v in pruned)
    drawn = "reference" if best.user_attrs.get(records.REFERENCE) else best.user_attrs.get(records.DRAWN, "sampler")
    return {
        "lr_steps": sum(v.drawn == records.LR_STEP for v in views),
        "prior_trials": sum(v.drawn == records.PRIOR for v in views),
        "around_best_trials": sum(v.drawn == records.AROUND_BEST for v in views),
        "best_drawn": drawn,  # "reference", "lr" (its rate moved), "prior" (around it), "best" or "sampler"
        "pruned": len(pruned),
        "pruned_epochs_trained": trained,
        "epochs_saved_by_pruning": epochs * len(pruned) - trained if epochs else None,
        "epochs_trained": sum(v.epochs_run for v in views),
        "stopped": (study.user_attrs.get(records.STOPPED) or {}).get("reason"),
        "pruning_regret": "not measured",
    }


def search_line(search: dict[str, Any]) -> str:
    """``search: 2 learning-rate steps from the reference, 3 drawn around it, 2 around the
    best so far; ...``: what :func:`search_record` holds, as ``optimize``, ``best`` and the report
    say it."""
    steps, n, local = search.get("lr_steps", 0), search["prior_trials"], search["around_best_trials"]
    line = (f"search: {steps} learning-rate step{'' if steps == 1 else 's'} from the reference, "
            f"{n} trial{'' if n == 1 else 's'} drawn around the reference, {local} around the best so "
            f"far; the best is {records.DRAWN_SAID.get(search['best_drawn'], search['best_drawn'])}")
    if search["epochs_saved_by_pruning"] is not None and search["pruned"]:
        total = search["epochs_trained"] + search["epochs_saved_by_pruning"]
        line += (f"; pruning spared {search['epochs_saved_by_pruning']} of {total} epochs "
                 f"(regret: {search['pruning_regret']})")
    if search["stopped"]:
        line += f"; {search['stopped']}"
    return line


def trained_params(trial: TrialView) -> dict[str, Any]:
    """The hyperparameters that acted in the trial, and ``epochs``: how many it trained."""
    return {**acting(trial.hparams), "epochs": trial.epochs_run}


def _examples(study: optuna.Study, prov: dict[str, Any], best: TrialView,
              ref: TrialView | None) -> tuple[int | None, int | None, dict[str, Any]]:
    """Validation and test examples, and the paired counts when they are of these two trials."""
    paired = study.user_attrs.get(records.PAIRED, {})
    if ref is None or paired.get("trials") != [best.number, ref.number]:
        paired = {}
    val_n = paired.get("validation", {}).get("n") or prov.get("val_examples")
    test_n = paired.get("test", {}).get("n") or prov.get("test_examples")
    return val_n, test_n, paired


def _runner_up(study: optuna.Study, best: int) -> dict[str, Any] | None:
    ranked = [t for t in records.best_first(study.get_trials(deepcopy=False)) if t.number != best]
    return {"trial": ranked[0].number, "value": ranked[0].value} if ranked else None


def claims(summary: dict[str, Any]) -> list[str]:
    """What the comparison with the reference means, in plain sentences: the reference is still
    the best; the validation choice did not hold on test; the reference trained fewer (or more)
    epochs than its source."""
    said = []
    ref, best = summary["reference_trial"], summary["trial"]
    runner = summary["runner_up"]
    if ref is not None and ref == best:
        line = f"the reference (trial {ref}) is still the best"
        if runner is not None:
            line += (f"; the runner-up, trial {runner['trial']}, trails it by "
                     f"{100 * (summary['value'] - runner['value']):.2f} pts on validation")
        said.append(line)
    test = summary["difference"]["test"]
    if test is not None and test["points"] < 0:
        sure = "within noise" if test["within_noise"] else f"{abs(test['points']) / test['se_points']:.1f} SE"
        said.append(f"on the test set the best trial is {abs(test['points']):.2f} pts below the reference "
                     f"({sure}): the choice made on validation did not hold on test")
    epochs = summary["reference_epochs"]
    if ref is not None and epochs["source"] and epochs["trained"] is not None and epochs["source"] != epochs["trained"]:
        said.append(f"the reference trained {epochs['trained']} epochs here (--epochs), not the {epochs['source']} "
                    "its source used")
    return said


def trials_json(study: optuna.Study, views: list[TrialView]) -> dict[str, Any]:
    """What ``tuner trials --json`` prints."""
    rows = [{"number": v.number, "state": v.state, "value": v.value, "params": acting(v.hparams), "epochs": v.history,
             "duration_s": v.duration_s, "reason": v.reason, "reference": v.reference, "drawn": v.drawn,
             "device": v.device, "node": v.node, "cohort": v.cohort}
            for v in views]
    return {"study": study.study_name, "counts": records.state_counts(study), "trials": rows}
