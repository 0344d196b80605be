"""The test set, touched once when a study ends: the best and the reference trial scored on it,
with the examples only one of them gets right (for the paired standard error of their difference)."""

from __future__ import annotations

import logging

import optuna
import torch

from tuner.contract import Hyperparameters
from tuner.errors import StudyError, WeightsError
from tuner.storage import records
from tuner.study.prepare import PreparedStudy
from tuner.training.loop import correct_examples

log = logging.getLogger(__name__)


def measure_test_accuracy(prepared: PreparedStudy) -> dict[int, float]:
    """Test accuracy of the best and the reference trial, measured once per study (again when
    a resume finds a new best); with both, how many validation and test examples only one of
    them gets right (``records.PAIRED``). Weights that are missing or damaged are skipped with
    one warning line."""
    study = prepared.study
    stored = records.test_accuracies(study)
    try:
        wanted = [records.best_trial(study)]
    except StudyError:  # no completed trial: nothing to report
        return stored
    ref = records.reference_trial(study)
    if ref is not None and ref.state.name == "COMPLETE" and ref.number != wanted[0].number:
        wanted.append(ref)
    numbers = [t.number for t in wanted]
    paired = study.user_attrs.get(records.PAIRED, {})
    if prepared.artifacts is None or (all(n in stored for n in numbers)
                                      and (len(wanted) < 2 or paired.get("trials") == numbers)):
        return stored
    masks = {}
    for trial in wanted:
        try:
            masks[trial.number] = _correct(prepared, trial)
        except WeightsError as e:
            log.warning("test accuracy of trial %d not measured: %s", trial.number, e)
            continue
        stored[trial.number] = masks[trial.number][1].float().mean().item()
    if masks:
        study.set_user_attr(records.TEST_ACCURACY, {str(k): v for k, v in stored.items()})
    if len(masks) == 2:
        study.set_user_attr(records.PAIRED, _paired(numbers, masks))
    return stored


def _correct(prepared: PreparedStudy, trial: optuna.trial.FrozenTrial) -> tuple[torch.Tensor, torch.Tensor]:
    """Which validation and which test examples the trial's kept model gets right."""
    data = prepared.data
    state = prepared.artifacts.load_state(trial)
    model = prepared.pair.arch.build(data.shape, Hyperparameters.from_dict(trial.user_attrs[records.HPARAMS]))
    model.load_state_dict(state)
    model.to(prepared.device)
    amp = prepared.device.type == "cuda"
    return (correct_examples(model, data, data.val_x, data.val_y, amp=amp),
            correct_examples(model, data, data.test_x, data.test_y, amp=amp))


def _paired(numbers: list[int], masks: dict[int, tuple[torch.Tensor, torch.Tensor]]) -> dict:
    (b_val, b_test), (r_val, r_test) = masks[numbers[0]], masks[numbers[1]]
    return {
        "trials": numbers,
        "validation": {"n": len(b_val), "only_best": int((b_val & ~r_val).sum()),
                       "only_reference": int((r_val & ~b_val).sum())},
        "test": {"n": len(b_test), "only_best": int((b_test & ~r_test).sum()),
                 "only_reference": int((r_test & ~b_test).sum())},
    }
