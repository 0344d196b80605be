"""A trial's checkpoint stays loadable when the trial is stopped between writing a new epoch's
file and recording it (a ``--ray`` actor killed by Ctrl-C lands there): the record always names
a file whose hash matches. Real study, real folder store, a real trainer on the digits."""

from __future__ import annotations

import optuna
import pytest
from torch import nn

from tuner.contract import Architecture, Hyperparameters
from tuner.storage import StudyArtifacts, records
from tuner.training import start_training
from tuner.trial import checkpoint

pytestmark = pytest.mark.reliability

HP = Hyperparameters(lr=0.05, batch_size=64, optimizer="sgd", momentum=0.9, weight_decay=0.0, scheduler="none")
MLP = Architecture(build=lambda shape, hp: nn.Sequential(nn.Flatten(), nn.Linear(shape.height * shape.width, 10)),
                   description="a linear model")


class _Stopped(Exception):
    """The stop that lands after a file is written and before its record is."""


def test_a_stop_between_the_file_and_its_record_leaves_the_last_recorded_epoch_loadable(tmp_path, digits_data):
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    artifacts = StudyArtifacts(study, str(tmp_path / "weights"), None)
    trial = study.ask()
    trainer = start_training(MLP, digits_data, HP, seed=1)
    for epoch in (1, 2):
        trainer.epoch()
        checkpoint.save(trial, trainer, epoch, artifacts)
    trainer.epoch()
    stored = trial.set_user_attr

    def stopped(key, value):
        raise _Stopped  # the epoch-3 file is written; its record never is
    trial.set_user_attr = stopped
    with pytest.raises(_Stopped):
        checkpoint.save(trial, trainer, 3, artifacts)
    trial.set_user_attr = stored

    frozen = study.get_trials(deepcopy=False)[0]
    assert frozen.user_attrs[records.CHECKPOINT]["epoch"] == 2
    again = start_training(MLP, digits_data, HP, seed=1)
    assert checkpoint.restore(again, frozen, artifacts) == 2  # its hash matches: not "damaged"
    assert len(list((tmp_path / "weights").glob("checkpoint-*"))) == 2  # the slots written in turn
    checkpoint.remove(study, frozen.number, artifacts)
    assert not list((tmp_path / "weights").glob("checkpoint-*"))
