"""What a study will cost, said before its first trial: steps of the reference settings timed on
the study's device (:mod:`tuner.planning.timing`), scaled to an epoch, a trial and the study,
with what to do when that is long on a CPU."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from tuner.contract import Architecture
from tuner.data.prepared import PreparedData
from tuner.planning.timing import Timing, duration, measure
from tuner.plugins.checks import default_hyperparameters
from tuner.training.loop import start_training

# A study longer than this on a CPU gets a word on how to make it shorter.
LONG_S = 3600.0


@dataclass(frozen=True)
class Estimate:
    timing: Timing
    device: str
    epoch_s: float
    epochs: int
    trials: int | None  # trials to run now; None: until --timeout
    jobs: int

    @property
    def trial_s(self) -> float:
        return self.epoch_s * self.epochs

    @property
    def study_s(self) -> float | None:
        """Every trial trained to its last epoch; on a CPU, trials at once share its cores."""
        if self.trials is None:
            return None
        at_once = self.jobs if self.device.startswith("cuda") else 1
        return self.trials * self.trial_s / at_once

    def line(self) -> str:
        study = "" if self.study_s is None else \
            f" · up to {duration(self.study_s)} for {self.trials} trial{'s' if self.trials != 1 else ''}" \
            " (pruned ones end sooner)"
        return (f"estimate on {self.device}: {self.timing.describe()} · {duration(self.epoch_s)} an epoch · "
                f"{duration(self.trial_s)} a trial of {self.epochs} epochs{study}")

    def hint(self) -> str | None:
        """What to do when the study is long on a CPU: nothing is refused, the user decides."""
        long = self.study_s if self.study_s is not None else self.trial_s
        if not self.device.startswith("cpu") or long < LONG_S:
            return None
        gpu = "this machine's GPU: --device cuda" if torch.cuda.is_available() else \
            "a machine with a GPU (--device cuda)"
        return (f"this is long for a CPU: the model is sized for a GPU. To cut it, use {gpu}; or train on fewer "
                "images (--max-train 5000), fewer --epochs, or a smaller pair (tuner plugins)")


def estimate(arch: Architecture, data: PreparedData, device: torch.device, epochs: int, trials: int | None,
             jobs: int = 1) -> Estimate:
    """Time the reference's settings (the architecture's defaults when it has none) on a
    throwaway model, on the study's data and device."""
    hp = default_hyperparameters(arch)
    trainer = start_training(arch, data, hp, seed=0)
    timing = measure(trainer)
    del trainer
    return Estimate(timing, str(device), timing.epoch_s(len(data.train_y), len(data.val_y)),
                    epochs, trials, jobs)
