"""What a finished study says: ``tuner best``'s summary (best vs reference, how sure, weights,
importance, hints) and ``tuner trials``' rows, as the plain dicts ``--json`` prints."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import optuna

from tuner.after import importance
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
    None with the reason under ``weights_artifact.problem``."""
    best_frozen = records.best_trial(study)
    best = view(best_frozen)
    ref = records.reference_trial(study)
    ref_view = view(ref) if ref is not None else None
    tests = records.test_accuracies(study)
    store = for_study(study, db_path)
    found = find_weights(best_frozen, store)
    ref_found = find_weights(ref, store) if ref is not None else None
    prov = records.provenance(study)
    paired = study.user_attrs.get(records.PAIRED, {})
    if ref_view is None or paired.get("trials") != [best.number, ref_view.number]:
        paired = {}
    val_n = paired.get("validation", {}).get("n") or prov.get("val_examples")
    test_n = paired.get("test", {}).get("n") or prov.get("test_examples")
    ref_test = tests.get(ref_view.number) if ref_view else None
    return {
        "study": study.study_name,
        "plugin": prov.get("plugin"),
        "trial": best.number,
        "value": best.value,
        "params": best.hparams,
        "epochs": best.history,
        "test_accuracy": tests.get(best.number),
        "weights": str(found.path) if found is not None and found.ok else None,
        "weights_artifact": found.as_dict() if found is not None else None,
        "artifacts": store.shown if store is not None else None,
        "reference_trial": ref_view.number if ref_view else None,
        "reference_value": ref_view.value if ref_view else None,
        "reference_test_accuracy": ref_test,
        "reference_weights": str(ref_found.path) if ref_found is not None and ref_found.ok else None,
        "counts": records.state_counts(study),
        "runs": records.runs(study),
        "importance": importance.current_importance(study),
        "hints": [h["text"] for h in importance.edge_hints(best_frozen)],
        "validation_examples": val_n,
        "test_examples": test_n,
        # best - reference in points, its standard error, and whether it is within noise
        "difference": {
            "validation": difference(best.value, ref_view.value if ref_view else None, val_n,
                                     paired.get("validation")),
            "test": difference(tests.get(best.number), ref_test, test_n, paired.get("test")),
        },
    }


def trials_json(study: optuna.Study, views: list[TrialView]) -> dict[str, Any]:
    """What ``tuner trials --json`` prints."""
    rows = [{"number": v.number, "state": v.state, "value": v.value, "params": v.hparams, "epochs": v.history,
             "duration_s": v.duration_s, "reason": v.reason, "reference": v.reference} for v in views]
    return {"study": study.study_name, "counts": records.state_counts(study), "trials": rows}
