"""``--jobs auto``: one measured step at the largest batch size says what a trial holds, and as
many trials run at once as fit in memory and the CPU cores (issue 21). The GPU's numbers are
given where there is no GPU; the CPU's count is checked against the tensors it must find."""

from __future__ import annotations

import json
import os
import re

import optuna
import pytest
import torch
from helpers import run_tuner
from torch import nn

from tuner.contract import Architecture, Hyperparameters
from tuner.planning import plan, step_peak_bytes
from tuner.planning.jobs import CUDA_CONTEXT_BYTES

GiB = 2**30
WIDE = 4096


@pytest.fixture
def data(digits_data):
    return digits_data


def test_a_cpu_step_counts_the_activations_weights_gradients_and_momentum_it_holds(data):
    inputs = data.shape.channels * data.shape.height * data.shape.width
    arch = Architecture(build=lambda shape, hp: nn.Sequential(nn.Flatten(), nn.Linear(inputs, WIDE), nn.ReLU(),
                                                               nn.Linear(WIDE, shape.num_classes)),
                        description="one wide hidden layer")
    params = inputs * WIDE + WIDE + WIDE * 10 + 10
    for batch in (256, 1024):
        hp = Hyperparameters(lr=0.01, batch_size=batch, optimizer="sgd", momentum=0.9, scheduler="none")
        # kept for backward: the batch, the hidden layer's output (ReLU's and the next layer's
        # input: one storage) and the log-softmax; weights, gradients and momentum: 3 copies
        expected = 4 * batch * (inputs + WIDE + 10) + 3 * 4 * params
        assert step_peak_bytes(arch, data, hp) == pytest.approx(expected, rel=0.03)


def test_as_many_as_fit_on_every_gpu_never_more_than_the_cores():
    step, data = 10 * GiB, 1 * GiB
    per = step + data + CUDA_CONTEXT_BYTES
    two = plan(step, data, [80 * GiB, 80 * GiB], cores=32, device="cuda", batch_size=512, most=64)
    assert two.jobs == 2 * int(0.8 * 80 * GiB // per) == 10
    assert "10 trials at once" in two.line() and "2 GPUs" in two.line() and "bound by memory" in two.line()
    assert plan(step, data, [80 * GiB, 80 * GiB], cores=4, device="cuda", batch_size=512, most=64).jobs == 4
    assert "bound by CPU cores" in plan(step, data, [80 * GiB], cores=4, device="cuda", batch_size=512,
                                        most=64).line()
    uneven = plan(step, data, [80 * GiB, 20 * GiB], cores=32, device="cuda", batch_size=512, most=64)
    assert uneven.jobs == 2  # in turn over both: no more on each than the fuller one fits
    assert plan(100 * GiB, data, [80 * GiB], cores=32, device="cuda", batch_size=512, most=64).jobs == 1


def test_jobs_auto_runs_as_many_as_the_cores_allow_and_says_why(tmp_path):
    done = run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "3", "--epochs", "1", "--jobs", "auto",
                     cwd=tmp_path, check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("--jobs auto:"))
    fit = int(re.search(r"; (\d+) fit in [\d.,]+ GiB free memory", line).group(1))
    cores = min(os.cpu_count() or 1, fit, 64)  # on CI's 2 cores: bound by the cores
    assert line.startswith(f"--jobs auto: {cores} trial") and "at batch size 512" in line, line
    assert f"{os.cpu_count()} CPU cores; bound by" in line, line
    study = optuna.load_study(study_name="mlp-digits", storage=f"sqlite:///{tmp_path / 'studies/mlp-digits.db'}")
    runs = [v for k, v in study.user_attrs.items() if k.startswith("run:")]
    assert [r["jobs"] for r in runs] == [cores] and len(study.trials) == 3
    shown = json.loads(run_tuner("trials", "studies/mlp-digits.db", "--json", cwd=tmp_path, check=True).stdout)
    assert len(shown["trials"]) == 3


@pytest.mark.reliability
def test_jobs_takes_a_number_or_auto(tmp_path):
    done = run_tuner("optimize", "--plugin", "mlp-digits", "--jobs", "many", cwd=tmp_path)
    assert done.returncode == 2 and "'many' is not a whole number or auto" in done.stderr
    assert not (tmp_path / "studies").exists()


def test_a_model_that_does_not_fit_one_image_is_one_line(data):
    from tuner.errors import UsageError
    from tuner.planning import auto_jobs

    class Huge(nn.Module):
        def forward(self, x):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 80.00 GiB")

    arch = Architecture(build=lambda shape, hp: nn.Sequential(nn.Flatten(), nn.Linear(shape.height * shape.width, 10),
                                                               Huge()),
                        description="never fits")
    hp = Hyperparameters(lr=0.01, batch_size=64, optimizer="sgd", scheduler="none")
    with pytest.raises(UsageError, match="--jobs auto: one image does not fit in memory"):
        auto_jobs(arch, data, hp, ["cpu"], 64)
