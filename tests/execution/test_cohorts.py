"""`tuner optimize --fuse K`: trials K at a time as one stacked model, each an ordinary trial of
the study: drawn with the cohort's shared settings, reported, pruned, saved, reproduced and
interrupted on its own."""

from __future__ import annotations

import os
import signal
import subprocess

import optuna
import pytest
from helpers import TUNER, one_error_line, pythonpath, read_json, run_tuner, training, wait_for_trials

from tuner.execution import Budget, CohortRunner
from tuner.study import OptimizeOptions, check_options, prepare_study


def load(db, name="mlp-digits") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}")


def cohorts(study: optuna.Study) -> list[list[int]]:
    return [list(c) for c in sorted({tuple(t.user_attrs["cohort"]) for t in study.trials if "cohort" in t.user_attrs})]


def test_each_member_of_a_fused_study_is_its_own_trial(tmp_path):
    proc = run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "6", "--epochs", "3", "--fuse", "3",
                     "--quiet", cwd=tmp_path, check=True)
    assert "--fuse 3: 3 trials trained at once as one model on cpu" in proc.stdout
    db = tmp_path / "studies" / "mlp-digits.db"
    study = load(db)
    assert len(study.trials) == 6 and all(t.state.is_finished() for t in study.trials)
    assert cohorts(study) == [[0, 1, 2], [3, 4, 5]]
    for members in cohorts(study):
        hps = [study.trials[n].user_attrs["hparams"] for n in members]
        assert len({(h["batch_size"], h["optimizer"]) for h in hps}) == 1  # what a fused step shares
        assert len({h["lr"] for h in hps}) == len(members)  # drawn per member
    assert study.trials[0].user_attrs["reference"] and study.trials[0].state.name == "COMPLETE"
    for t in study.trials:  # its own epochs, reported as a trial alone reports them
        assert len(t.user_attrs["history"]) == len(t.intermediate_values) == (3 if t.state.name == "COMPLETE" else
                                                                              len(t.intermediate_values))
    rows = read_json(run_tuner("trials", str(db), "--json", cwd=tmp_path, check=True).stdout)["trials"]
    assert [r["cohort"] for r in rows] == [[0, 1, 2]] * 3 + [[3, 4, 5]] * 3
    best = read_json(run_tuner("best", str(db), "--json", cwd=tmp_path, check=True).stdout)
    # scored on the test set with that member's own kept weights: near its validation accuracy, where
    # another member's or untrained weights (10% on ten digits) would not be
    assert abs(best["test_accuracy"] - best["value"]) < 0.1, (best["test_accuracy"], best["value"])
    member = next(t.number for t in study.trials if t.state.name == "COMPLETE" and t.number != 0)
    again = run_tuner("reproduce", str(db), "--trial", str(member), cwd=tmp_path, check=True)
    assert "reproduced" in again.stdout  # trained alone, it ends where it ended in the cohort
    others = ", ".join(str(n) for n in next(c for c in cohorts(study) if member in c) if n != member)
    assert f"it trained fused with trials {others} (--fuse); this trains it alone" in again.stdout


class _PruneOne(optuna.pruners.BasePruner):
    def __init__(self, number: int | None) -> None:
        self.number = number

    def prune(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> bool:
        return trial.number == self.number


def _run(tmp_path, name: str, pruned: int | None) -> optuna.Study:
    options = OptimizeOptions(plugin="mlp-digits", trials=3, epochs=3, fuse=3, db=str(tmp_path / f"{name}.db"))
    check_options(options)
    prepared = prepare_study(options)
    prepared.study.pruner = _PruneOne(pruned)
    CohortRunner(prepared.study, prepared.objective, 3, [prepared.objective.after_trial]).run(Budget(3))
    return prepared.study


def test_a_pruned_member_leaves_and_the_others_train_on_unchanged(tmp_path):
    plain, pruned = _run(tmp_path, "plain", None), _run(tmp_path, "pruned", 1)
    assert [t.state.name for t in pruned.trials] == ["COMPLETE", "PRUNED", "COMPLETE"]
    assert len(pruned.trials[1].user_attrs["history"]) == 1  # judged after its first epoch, alone
    assert "pruner" in pruned.trials[1].user_attrs["prune_reason"]
    for n in (0, 2):
        assert pruned.trials[n].params == plain.trials[n].params
        assert pruned.trials[n].user_attrs["history"][-1]["val_accuracy"] == \
            plain.trials[n].user_attrs["history"][-1]["val_accuracy"]
        assert pruned.trials[n].user_attrs["history"][-1]["train_loss"] == pytest.approx(
            plain.trials[n].user_attrs["history"][-1]["train_loss"], rel=1e-6)


@pytest.mark.reliability
def test_a_model_that_cannot_be_fused_trains_one_trial_at_a_time(tmp_path, unfusable_plugins):
    env = pythonpath(unfusable_plugins)
    proc = run_tuner("optimize", "--plugin", "gated-digits", "--trials", "3", "--epochs", "2", "--fuse", "4",
                     "--quiet", cwd=tmp_path, env=env, check=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("--fuse")]
    assert len(lines) == 1 and lines[0].startswith("--fuse: one trial at a time: the model cannot be fused: "), \
        proc.stdout
    study = load(tmp_path / "studies" / "gated-digits.db", "gated-digits")
    assert len(study.trials) == 3 and cohorts(study) == []
    assert study.trials[0].state.name == "COMPLETE"


@pytest.mark.reliability
@pytest.mark.parametrize(("args", "says"), [
    (["--fuse", "0"], "--fuse must be between 1 and 64, got 0"),
    (["--fuse", "2", "--compile"], "--fuse and --compile"),
    (["--fuse", "auto", "--ray", "local"], "--fuse auto with --ray: the probe would time this machine"),
])
def test_a_fuse_that_cannot_be_is_one_line(tmp_path, args, says):
    proc = run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "2", *args, cwd=tmp_path)
    assert says in one_error_line(proc)
    assert not (tmp_path / "studies").exists()


@pytest.mark.reliability
@pytest.mark.slow
def test_ctrl_c_stores_every_member_interrupted_and_each_goes_on_alone(tmp_path):
    args = ["optimize", "--plugin", "mlp-digits", "--trials", "30", "--epochs", "200", "--fuse", "3",
            "--checkpoint-every", "0", "--quiet"]
    env = {**os.environ, "TUNER_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([TUNER, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    db = tmp_path / "studies" / "mlp-digits.db"
    wait_for_trials(db, "mlp-digits", lambda trials: training(trials) == 3
                    and all("checkpoint" in t.user_attrs for t in trials), proc=proc)
    os.killpg(proc.pid, signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted: the running trial is stored as failed" in stderr
    stopped = load(db).trials
    assert [t.state.name for t in stopped] == ["FAIL"] * 3
    assert all(t.user_attrs["fail_reason"] == "interrupted" and "checkpoint" in t.user_attrs for t in stopped)

    run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "3", "--fuse", "3", "--quiet", cwd=tmp_path,
              check=True)
    resumed = load(db).trials
    retries = {t.user_attrs["retry_of"]: t for t in resumed if "retry_of" in t.user_attrs}
    assert sorted(retries) == [0, 1, 2] and all(t.state.name == "COMPLETE" for t in retries.values())
    for number, retry in retries.items():
        saved = stopped[number].user_attrs["checkpoint"]["epoch"]
        assert retry.user_attrs["history"][:saved] == stopped[number].user_attrs["history"][:saved]
        assert len(retry.user_attrs["history"]) == 200 and "cohort" not in retry.user_attrs  # on alone


@pytest.mark.slow
def test_a_cohort_stopped_at_timeout_goes_on_alone(tmp_path):
    args = ["optimize", "--plugin", "mlp-digits", "--epochs", "100", "--fuse", "3", "--checkpoint-every", "0",
            "--quiet"]
    proc = run_tuner(*args, "--trials", "30", "--timeout", "3", cwd=tmp_path, check=True)
    stopped = load(tmp_path / "studies" / "mlp-digits.db").trials
    assert [t.state.name for t in stopped] == ["FAIL"] * 3, proc.stdout
    assert all(t.user_attrs["fail_reason"].startswith("stopped at --timeout") for t in stopped)
    for t in stopped:  # saved where it stopped: the same command goes on from there
        assert t.user_attrs["checkpoint"]["epoch"] == len(t.user_attrs["history"]) < 100
        assert f"--timeout: trial {t.number} stopped after epoch" in proc.stdout

    run_tuner(*args, "--trials", "3", cwd=tmp_path, check=True)
    retries = {t.user_attrs["retry_of"]: t for t in load(tmp_path / "studies" / "mlp-digits.db").trials
               if "retry_of" in t.user_attrs}
    assert sorted(retries) == [0, 1, 2] and all(t.state.name == "COMPLETE" for t in retries.values())
    for number, retry in retries.items():
        done = len(stopped[number].user_attrs["history"])
        assert retry.user_attrs["history"][:done] == stopped[number].user_attrs["history"]


@pytest.mark.slow
def test_jobs_run_cohorts_and_share_one_budget(tmp_path):
    run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "7", "--epochs", "2", "--jobs", "2", "--fuse", "2",
              "--quiet", cwd=tmp_path, check=True)
    study = load(tmp_path / "studies" / "mlp-digits.db")
    assert len(study.trials) == 7 and all(t.state.is_finished() for t in study.trials)  # --trials is exact
    fused = cohorts(study)
    assert fused and all(len(c) == 2 for c in fused)
    assert len({tuple(sorted(t.params.items())) for t in study.trials}) == 7
