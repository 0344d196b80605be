"""`tuner optimize`, `best` and `trials` end to end through the real CLI, on the embedded digits."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
import torch
from helpers import TUNER, lenet_digits_db, run_tuner, wait_for_trials

from tuner.contract import Hyperparameters
from tuner.plugins.registry import registry

STUDY_ARGS = ("optimize", "--plugin", "lenet-digits", "--trials", "6", "--epochs", "3", "--seed", "7",
              "--pruner", "median", "--pruner-startup", "1", "--pruner-warmup", "0", "--quiet")


def load(db: Path, name: str = "lenet-digits") -> optuna.Study:
    return optuna.load_study(study_name=name, storage=f"sqlite:///{db}")


def signature(study: optuna.Study) -> list[tuple]:
    return [(t.number, t.state.name, t.value, tuple(sorted(t.params.items()))) for t in study.trials]


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    cwd = tmp_path_factory.mktemp("study")
    proc = run_tuner(*STUDY_ARGS, cwd=cwd, check=True)
    (cwd / "first-run.txt").write_text(proc.stdout)
    db = lenet_digits_db(cwd)
    # What a person does next: copy the .db alone to another machine (before this test opens it).
    (cwd / "wal-left.txt").write_text(str(db.with_name(db.name + "-wal").exists()))
    shutil.copy(db, cwd / "copied.db")
    return cwd


def test_the_study_file_alone_holds_the_whole_study_when_the_command_ends(study_dir):
    """SQLite keeps recent writes in a -wal file beside the .db until its last connection
    closes; tuner closes its storages at exit, so that the .db alone can be copied."""
    assert (study_dir / "wal-left.txt").read_text() == "False"
    copied = signature(load(study_dir / "copied.db"))
    assert len(copied) == 6 and copied == signature(load(lenet_digits_db(study_dir)))


def test_study_is_stored_with_per_epoch_values(study_dir):
    study = load(study_dir / "studies" / "lenet-digits.db")
    assert len(study.trials) == 6
    for t in study.trials:
        history = t.user_attrs["history"]
        assert [row["epoch"] for row in history] == list(range(1, len(history) + 1))
        assert {"train_loss", "val_loss", "val_accuracy", "lr"} <= set(history[0])
        assert t.intermediate_values == {i: row["val_accuracy"] for i, row in enumerate(history)}
        if t.state.name == "COMPLETE":
            assert len(history) == 3 and t.value == history[-1]["val_accuracy"]


def test_trial_zero_is_the_seed_reference(study_dir):
    study = load(study_dir / "studies" / "lenet-digits.db")
    first = study.trials[0]
    assert first.user_attrs["reference"] is True
    reference = registry().architecture("lenet").reference
    # stored: the reference's settings that act (its source's epoch budget is the provenance's)
    assert Hyperparameters.from_dict(first.user_attrs["hparams"]) == dataclasses.replace(reference, epochs=None)
    assert study.user_attrs["provenance"]["reference_epochs"] == reference.epochs
    assert sum(bool(t.user_attrs.get("reference")) for t in study.trials) == 1


def test_a_pruner_set_up_to_prune_prunes(study_dir):
    study = load(study_dir / "studies" / "lenet-digits.db")
    pruned = [t for t in study.trials if t.state.name == "PRUNED"]
    assert pruned
    assert all("below the pruner's bar" in t.user_attrs["prune_reason"] for t in pruned)


def test_provenance_is_recorded(study_dir):
    prov = load(study_dir / "studies" / "lenet-digits.db").user_attrs["provenance"]
    assert prov["plugin"] == "lenet-digits" and prov["seed"] == 7 and prov["device"] == "cpu"
    assert prov["architecture"]["distribution"] == "tuner" and prov["tuner_version"]
    assert "lr" in prov["search_space"] and prov["epochs"] == 3


def test_best_json_agrees_with_the_database_and_weights_predict(study_dir):
    db = study_dir / "studies" / "lenet-digits.db"
    summary = json.loads(run_tuner("best", str(db), "--json", cwd=study_dir, check=True).stdout)
    study = load(db)
    assert summary["study"] == "lenet-digits"
    assert summary["trial"] == study.best_trial.number
    assert summary["value"] == study.best_value
    assert summary["params"] == {**study.best_trial.user_attrs["hparams"],
                                 "epochs": len(study.best_trial.user_attrs["history"])}
    assert summary["reference_value"] == study.trials[0].value
    assert 0 < summary["test_accuracy"] <= 1
    assert study.user_attrs["test_accuracy"][str(summary["trial"])] == summary["test_accuracy"]

    weights = Path(summary["weights"])
    assert weights.parent == (study_dir / "studies" / "lenet-digits.artifacts").resolve()
    assert weights.name == study.best_trial.user_attrs["weights"]["artifact_id"] == summary["weights_artifact"]["id"]
    state = torch.load(weights, weights_only=True)
    arch = registry().architecture("lenet")
    from tuner.contract import ImageShape
    from tuner.data import load_splits, normalize

    model = arch.build(ImageShape(1, 28, 28, 10), Hyperparameters.from_dict(summary["params"]))
    model.load_state_dict(state)
    digits = registry().dataset("digits")
    splits = load_splits("digits", digits, study_dir)
    with torch.no_grad():
        predicted = model.eval()(normalize(splits.test_images, digits)).argmax(1)
    accuracy = (predicted == splits.test_labels).float().mean().item()
    assert accuracy == pytest.approx(summary["test_accuracy"], abs=1e-6)


@pytest.mark.slow
def test_best_says_how_sure_the_win_is_from_the_examples_each_model_alone_gets_right(study_dir):
    from tuner.after.rebuild import rebuild
    from tuner.storage import for_study
    from tuner.training import correct_examples

    db = study_dir / "studies" / "lenet-digits.db"
    summary = json.loads(run_tuner("best", str(db), "--json", cwd=study_dir, check=True).stdout)
    study = load(db)
    rebuilt = rebuild(study, study.best_trial, study_dir / "data", "cpu")
    data = rebuilt.data
    masks = {}
    for number in (summary["trial"], summary["reference_trial"]):
        hp = Hyperparameters.from_dict(study.trials[number].user_attrs["hparams"])
        model = rebuilt.pair.arch.build(data.shape, hp)
        model.load_state_dict(for_study(study, db).load_state(study.trials[number]))
        masks[number] = correct_examples(model, data, data.val_x, data.val_y)
    best, ref = masks[summary["trial"]], masks[summary["reference_trial"]]
    b, c, n = int((best & ~ref).sum()), int((ref & ~best).sum()), len(best)
    assert summary["validation_examples"] == n == len(data.val_y)
    d = summary["difference"]["validation"]
    assert d["paired"] and d["examples"] == n
    assert d["points"] == pytest.approx(100 * (b - c) / n)
    assert d["se_points"] == pytest.approx(100 * (((b + c) / n - ((b - c) / n) ** 2) / n) ** 0.5)
    assert d["within_noise"] == (abs(d["points"]) < 2 * d["se_points"])
    assert summary["difference"]["test"]["examples"] == summary["test_examples"] == len(data.test_y)
    text = run_tuner("best", str(db), cwd=study_dir, check=True).stdout
    assert f"validation ({n:,}, one = {100 / n:.2f} pts): SE {d['se_points']:.2f} pts, paired" in text


def test_a_tie_and_a_one_example_win_are_within_noise():
    from tuner.after.summary import difference

    tie = difference(0.9861, 0.9861, 144, {"n": 144, "only_best": 0, "only_reference": 0})
    assert tie["within_noise"] and tie["se_points"] == 0
    one = difference(0.9861, 0.9792, 144, {"n": 144, "only_best": 1, "only_reference": 0})
    assert one["within_noise"] and one["paired"]
    unpaired = difference(0.99, 0.80, 144)
    assert not unpaired["within_noise"] and not unpaired["paired"]
    assert unpaired["se_points"] == pytest.approx(100 * ((0.99 * 0.01 + 0.8 * 0.2) / 144) ** 0.5)


def test_the_cost_is_measured_and_said_before_trial_0(study_dir):
    """Before any trial the run says what a step, an epoch, a trial and the study cost here."""
    text = (study_dir / "first-run.txt").read_text()
    line = next(line for line in text.splitlines() if line.startswith("estimate on cpu: "))
    assert re.search(r"a step of \d+ images · [\d.]+ (s|min) an epoch · [\d.]+ (s|min) a trial of 3 epochs · "
                     r"up to [\d.]+ (s|min) for 6 trials", line), line
    assert text.index(line) < text.index("trial 0 ")


def test_end_of_run_summary_compares_best_with_reference(study_dir):
    text = (study_dir / "first-run.txt").read_text()
    assert "best vs hand-picked reference" in text
    assert "validation accuracy" in text and "test accuracy" in text
    assert "tuner best studies/lenet-digits.db" in text
    assert "complete" in text and "pruned" in text


@pytest.mark.slow
def test_best_and_trials_print_for_people(study_dir):
    db = str(study_dir / "studies" / "lenet-digits.db")
    best = run_tuner("best", db, cwd=study_dir, check=True).stdout
    assert "Per epoch" in best and "val acc" in best and "reference" in best
    trials = run_tuner("trials", db, cwd=study_dir, check=True).stdout
    assert all(f"│ {n} " in trials for n in range(6))
    pruned = run_tuner("trials", db, "--state", "pruned", "--sort", "value", "--limit", "1",
                       cwd=study_dir, check=True).stdout
    rows = [line for line in pruned.splitlines() if line.startswith("│")]
    assert len(rows) == 1 and "│ pruned" in rows[0] and "below the pruner" in rows[0]


@pytest.mark.slow
def test_tables_fit_80_columns_by_hiding_columns_not_wrapping_cells(study_dir):
    db = str(study_dir / "studies" / "lenet-digits.db")
    for args in (("trials", db), ("best", db), ("trials", db, "--state", "pruned", "--state", "failed")):
        text = run_tuner(*args, cwd=study_dir, env={"COLUMNS": "80"}, check=True).stdout
        assert max(len(line) for line in text.splitlines()) <= 80, text
    narrow = run_tuner("trials", db, cwd=study_dir, env={"COLUMNS": "80"}).stdout
    assert "hidden to fit: time" in narrow and "│ 0 │ complete" in narrow  # rows stay one line each
    wide = run_tuner("trials", db, cwd=study_dir, env={"COLUMNS": "200"}).stdout
    assert "hidden to fit" not in wide and "weight_decay" in wide and "time" in wide
    failed = run_tuner("trials", db, "--state", "failed", "--json", cwd=study_dir, check=True).stdout
    assert all(t["state"] == "FAIL" for t in json.loads(failed)["trials"])


def test_reading_a_study_imports_neither_torch_nor_scikit_learn(study_dir):
    """best and trials read records: importing torch (1.3 s) and scikit-learn (1.8 s, through
    Optuna's importance) would be most of their time on a big study (benchmarks/big_study.py)."""
    db = str(study_dir / "studies" / "lenet-digits.db")
    probe = ("import sys, io, contextlib\nfrom tuner.cli import main\n"
             "for args in (['best', DB], ['best', DB, '--json'], ['trials', DB, '--json']):\n"
             "    with contextlib.redirect_stdout(io.StringIO()):\n        assert main(args) == 0\n"
             "print(sorted(m for m in ('torch', 'sklearn', 'torch._dynamo') if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", probe.replace("DB", repr(db))], capture_output=True, text=True,
                          cwd=study_dir, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout + proc.stderr


def test_trials_json_agrees_with_the_database(study_dir):
    db = study_dir / "studies" / "lenet-digits.db"
    listing = json.loads(run_tuner("trials", str(db), "--json", cwd=study_dir, check=True).stdout)
    stored = load(db).trials
    assert listing["study"] == "lenet-digits" and [t["number"] for t in listing["trials"]] == list(range(6))
    for row, trial in zip(listing["trials"], stored, strict=True):
        assert row["state"] == trial.state.name and row["epochs"] == trial.user_attrs["history"]
        assert row["value"] == (trial.value if trial.state.name == "COMPLETE" else None)
        assert row["params"]["lr"] == trial.user_attrs["hparams"]["lr"] and row["reference"] == (trial.number == 0)
    assert sum(listing["counts"].values()) == 6
    pruned = json.loads(run_tuner("trials", str(db), "--json", "--state", "pruned", cwd=study_dir,
                                  check=True).stdout)["trials"]
    assert pruned and all(t["state"] == "PRUNED" and "below the pruner" in t["reason"] for t in pruned)


@pytest.mark.slow
def test_rerunning_resumes_instead_of_starting_over(tmp_path):
    args = ("optimize", "--plugin", "mlp-digits", "--trials", "2", "--epochs", "1", "--quiet")
    first = run_tuner(*args, cwd=tmp_path, check=True)
    assert "weights kept in" not in first.stdout, "no folder is named before it exists"
    second = run_tuner(*args, cwd=tmp_path, check=True)
    assert "resumed, 2 trials stored" in second.stdout
    assert f"weights kept in {tmp_path / 'studies' / 'mlp-digits.artifacts'}/" in second.stdout
    study = load(tmp_path / "studies" / "mlp-digits.db", "mlp-digits")
    assert len(study.trials) == 4
    assert [bool(t.user_attrs.get("reference")) for t in study.trials] == [True, False, False, False]
    # A resumed sampler does not replay the first run's draws.
    assert study.trials[1].params != study.trials[2].params

    # Each run is recorded; one that changes the search space says so, in JSON and for people.
    run_tuner(*args, "--space", "batch_size=64", cwd=tmp_path, check=True)
    db = str(tmp_path / "studies" / "mlp-digits.db")
    runs = json.loads(run_tuner("best", db, "--json", cwd=tmp_path, check=True).stdout)["runs"]
    assert [r["trials_stored_before"] for r in runs] == [0, 2, 4]
    assert [r["device"] for r in runs] == ["cpu"] * 3
    assert [r["space_overrides"] for r in runs] == [[], [], ["batch_size=64"]]
    assert "search_space" not in runs[1] and runs[2]["search_space"]["batch_size"] == "= 64"
    shown = run_tuner("best", db, cwd=tmp_path, check=True).stdout
    assert "3 runs of tuner optimize, on cpu; the search space differed from the study's first in run 3" in shown


@pytest.mark.slow
def test_same_seed_gives_same_params_and_values(study_dir, tmp_path):
    run_tuner(*STUDY_ARGS, cwd=tmp_path, check=True)
    first = signature(load(study_dir / "studies" / "lenet-digits.db"))
    again = signature(load(tmp_path / "studies" / "lenet-digits.db"))
    assert first == again


@pytest.mark.reliability
@pytest.mark.slow
def test_a_diverging_trial_fails_with_its_reason_and_the_study_goes_on(tmp_path):
    proc = run_tuner("optimize", "--plugin", "lenet-digits", "--trials", "3", "--epochs", "2",
                     "--space", "lr=1e6", "--space", "optimizer=sgd", "--pruner", "none", "--quiet",
                     cwd=tmp_path, check=True)
    study = load(tmp_path / "studies" / "lenet-digits.db")
    assert study.trials[0].state.name == "COMPLETE"  # the reference is not diverging
    failed = [t for t in study.trials if t.state.name == "FAIL"]
    assert len(failed) == 2
    assert all("training loss became" in t.user_attrs["fail_reason"] for t in failed)
    assert "training loss became" in proc.stdout


@pytest.mark.reliability
@pytest.mark.slow
def test_ctrl_c_records_the_trial_as_interrupted_and_the_study_resumes(tmp_path):
    import os

    args = ["optimize", "--plugin", "mlp-digits", "--trials", "50", "--epochs", "200", "--quiet"]
    env = {**os.environ, "TUNER_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([TUNER, *args], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    db = tmp_path / "studies" / "mlp-digits.db"
    # until trial 0 (the reference) has an epoch stored
    wait_for_trials(db, "mlp-digits", lambda trials: trials and trials[-1].user_attrs.get("history"), timeout=120,
                    proc=proc)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr and "interrupted" in stderr
    assert "Top" in stdout  # the summary still prints
    study = load(db, "mlp-digits")
    interrupted = study.trials[-1]
    stored_before = len(study.trials)
    assert interrupted.state.name == "FAIL" and interrupted.user_attrs["fail_reason"] == "interrupted"
    assert interrupted.number == 0 and interrupted.user_attrs["reference"]

    refused = run_tuner("optimize", "--plugin", "mlp-digits", "--max-train", "64", cwd=tmp_path)
    assert refused.returncode != 0 and "max-train" in refused.stderr  # a study keeps its settings
    again = run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "1", "--quiet", cwd=tmp_path, check=True)
    shown = json.loads(run_tuner("trials", str(db), "--json", cwd=tmp_path, check=True).stdout)["trials"]
    # what `trials` listed, not the re-queued one
    assert f"resumed, {stored_before} trial{'s' if stored_before != 1 else ''} stored" in again.stdout
    resumed = load(db, "mlp-digits")
    assert len(resumed.trials) == stored_before + 1 == len(shown)
    rerun = resumed.trials[-1]  # the interrupted baseline is run again, not lost
    assert rerun.user_attrs["reference"] and rerun.state.name == "COMPLETE"
    summary = json.loads(run_tuner("best", str(db), "--json", cwd=tmp_path, check=True).stdout)
    assert summary["reference_trial"] == rerun.number and summary["reference_value"] == rerun.value


@pytest.mark.slow
def test_real_mnist_with_a_small_training_cap(mnist_dir, tmp_path):
    proc = run_tuner("optimize", "--plugin", "mlp-mnist", "--trials", "2", "--epochs", "1",
                     "--max-train", "2000", "--data-dir", str(mnist_dir), "--quiet", cwd=tmp_path,
                     check=True)
    assert "2,000 train / 222 validation" in proc.stdout  # the split's 9:1 kept
    summary = json.loads(run_tuner("best", "studies/mlp-mnist.db", "--json", cwd=tmp_path,
                                   check=True).stdout)
    assert summary["value"] > 0.8 and summary["test_accuracy"] > 0.8
    assert summary["validation_examples"] == 222 and summary["test_examples"] == 10_000


@pytest.mark.slow
def test_a_study_capped_before_the_validation_cap_keeps_its_validation_set(tmp_path):
    """Resuming must score on the same examples: a study stored without max_val keeps all of them."""
    run_tuner("optimize", "--plugin", "lenet-digits", "--trials", "1", "--epochs", "1", "--max-train", "300",
              "--quiet", cwd=tmp_path, check=True)
    study = optuna.load_study(study_name="lenet-digits", storage=f"sqlite:///{tmp_path / 'studies/lenet-digits.db'}")
    assert study.user_attrs["provenance"]["max_val"] == 33
    old = dict(study.user_attrs["provenance"])
    del old["max_val"]
    study.set_user_attr("provenance", old)
    proc = run_tuner("optimize", "--plugin", "lenet-digits", "--trials", "1", "--quiet", cwd=tmp_path, check=True)
    assert "300 train / 144 validation" in proc.stdout  # all of them, as before


@pytest.mark.slow
@pytest.mark.parametrize("sampler", ["random", "cmaes", "qmc"])
def test_other_samplers_and_pruners_run(sampler, tmp_path):
    run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "3", "--epochs", "2", "--sampler", sampler,
              "--pruner", {"random": "hyperband", "cmaes": "sha", "qmc": "none"}[sampler], "--quiet",
              cwd=tmp_path, check=True)
    assert len(load(tmp_path / "studies" / "mlp-digits.db", "mlp-digits").trials) == 3


@pytest.mark.slow
def test_storage_url_and_db_path_and_space_file(tmp_path):
    (tmp_path / "space.toml").write_text('[space]\nlr = {low = 1e-3, high = 1e-2, log = true}\n'
                                         'batch_size = [64]\noptimizer = "adam"\n')
    run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "3", "--epochs", "1", "--quiet",
              "--db", "elsewhere/x.db", "--space", "space.toml", cwd=tmp_path, check=True)
    study = load(tmp_path / "elsewhere" / "x.db", "mlp-digits")
    for t in study.trials[1:]:
        assert 1e-3 <= t.params["lr"] <= 1e-2 and t.params["batch_size"] == 64
        assert t.user_attrs["hparams"]["optimizer"] == "adam"
    url = f"sqlite:///{tmp_path / 'url.db'}"
    run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "1", "--epochs", "1", "--quiet",
              "--storage", url, "--study", "s1", cwd=tmp_path, check=True)
    assert json.loads(run_tuner("best", url, "--json", cwd=tmp_path, check=True).stdout)["study"] == "s1"


@pytest.mark.reliability
@pytest.mark.slow
def test_out_of_memory_splits_the_step_and_the_trial_completes_with_its_batch_size(broken_plugins, tmp_path):
    """oomnet raises CUDA's out-of-memory error for training batches over 100 images: a trial of
    batch 512 trains its steps as 8 micro-batches of 64, records it, and completes."""
    from helpers import pythonpath

    run_tuner("optimize", "--plugin", "oomnet-digits", "--trials", "6", "--epochs", "1", "--pruner", "none",
              "--space", "batch_size=32,512", "--quiet", cwd=tmp_path, env=pythonpath(broken_plugins), check=True)
    study = load(tmp_path / "studies" / "oomnet-digits.db", "oomnet-digits")
    assert {t.state.name for t in study.trials} == {"COMPLETE"}
    sizes = {t.user_attrs["hparams"]["batch_size"]: t.user_attrs.get("split") for t in study.trials}
    assert sizes == {32: None, 512: 8}, sizes


@pytest.mark.reliability
def test_a_batch_size_that_did_not_fit_is_not_drawn_again_on_that_device(broken_plugins, tmp_path):
    """crowdnet runs out of memory, one image included, at batch sizes of 256 and more: each
    such trial fails saying so, and from then on the sampler draws only smaller batch sizes
    (random search would draw them half the time)."""
    from helpers import pythonpath

    run_tuner("optimize", "--plugin", "crowdnet-digits", "--trials", "12", "--epochs", "1", "--pruner", "none",
              "--sampler", "random", "--seed", "3", "--space", "batch_size=32,64,256,512", "--quiet",
              cwd=tmp_path, env=pythonpath(broken_plugins), check=True)
    trials = load(tmp_path / "studies" / "crowdnet-digits.db", "crowdnet-digits").trials
    sizes = [t.params["batch_size"] for t in trials]
    failed = [t for t in trials if t.state.name == "FAIL"]
    assert failed and all(t.params["batch_size"] >= 256 for t in failed), sizes
    assert all("one image does not fit in memory" in t.user_attrs["fail_reason"] for t in failed)
    assert failed[0].user_attrs["does_not_fit"] == {"device": "cpu", "batch_size": sizes[failed[0].number]}
    limit = min(t.params["batch_size"] for t in failed)
    after = [t for t in trials if t.number > max(t.number for t in failed)]
    assert len(after) >= 6 and all(t.params["batch_size"] < limit for t in after), sizes
    assert all(t.state.name == "COMPLETE" for t in trials if t.params["batch_size"] < 256)


@pytest.mark.reliability
def test_a_study_whose_smallest_batch_does_not_fit_stops_in_one_line(broken_plugins, tmp_path):
    from helpers import pythonpath

    done = run_tuner("optimize", "--plugin", "crowdnet-digits", "--trials", "6", "--epochs", "1",
                     "--space", "batch_size=256,512", "--quiet", cwd=tmp_path, env=pythonpath(broken_plugins))
    assert done.returncode != 0 and "Traceback" not in done.stderr
    said = done.stderr.strip().splitlines()
    assert len(said) == 1 and "one image does not fit in memory" in said[0] and "no batch size below 256" in said[0]
    assert "--space batch_size=" in said[0], said
    trials = load(tmp_path / "studies" / "crowdnet-digits.db", "crowdnet-digits").trials
    assert [t.state.name for t in trials] == ["FAIL"] * len(trials) and len(trials) <= 2


@pytest.mark.slow
def test_live_display_on_a_terminal(tmp_path, mnist_dir):
    """On a terminal the run shows live bars: trials done/total, best, pruned/failed; the running
    trial's epoch, batches done, images/s and time left, moving inside an epoch (real MNIST,
    epochs of seconds); the study's time left; no placeholder total."""
    import os
    import pty
    import re

    master, slave = pty.openpty()
    env = {**os.environ, "TUNER_OFFLINE": "1", "COLUMNS": "160", "TERM": "xterm"}
    proc = subprocess.Popen([TUNER, "optimize", "--plugin", "mlp-mnist", "--trials", "2", "--epochs", "2",
                             "--max-train", "30000", "--data-dir", str(mnist_dir)],
                            cwd=tmp_path, env=env, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 65536)
        except OSError:  # the terminal closed: the process has exited
            break
        if not data:
            break
        chunks.append(data)
    assert proc.wait(timeout=300) == 0
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", b"".join(chunks).decode(errors="replace"))
    assert "estimate on cpu: " in text and " an epoch · " in text
    assert "trial 0 (reference)" in text and "2/2" in text
    assert "best " in text and "pruned 0" in text and "failed 0" in text
    assert re.search(r"epoch 1/2 +batch [1-9]\d*/\d+ · [\d,]+ img/s", text), text  # inside the first epoch
    assert re.search(r"loss \d\.\d{4} · val \d+\.\d\d%", text)  # the last epoch's result
    assert re.search(r"~\d+(\.\d+)? (s|min) left", text)  # the trial's and the study's time left
    assert "0/1 " not in text  # the old placeholder total of a trial bar
    assert "best vs hand-picked reference" in text


@pytest.mark.slow
def test_timeout_stops_starting_trials(tmp_path):
    run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "1000", "--epochs", "1", "--timeout", "2",
              "--quiet", cwd=tmp_path, check=True)
    assert 1 <= len(load(tmp_path / "studies" / "mlp-digits.db", "mlp-digits").trials) < 1000


@pytest.mark.slow
@pytest.mark.parametrize("jobs", ["1", "2"])
def test_trials_auto_stops_when_more_trials_stop_showing_a_better_model(tmp_path, jobs):
    """--trials auto on the README's pair: the study stops by itself, says why, and `best` says it
    again with what the search did; with --jobs 2 the workers stop taking trials the same way."""
    proc = run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "auto", "--epochs", "2", "--seed", "3",
                     "--jobs", jobs, "--quiet", cwd=tmp_path, check=True)
    said = " ".join(proc.stdout.split())  # the search line wraps where the terminal ends
    assert "--trials auto: the best rose" in said and "under one standard error" in said, said
    study = optuna.load_study(study_name="mlp-digits", storage=f"sqlite:///{tmp_path / 'studies' / 'mlp-digits.db'}")
    trials = study.get_trials(deepcopy=False)
    assert 8 <= len(trials) < 40, len(trials)
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
    summary = json.loads(run_tuner("best", "studies/mlp-digits.db", "--json", cwd=tmp_path, check=True).stdout)
    search = summary["search"]
    assert search["stopped"].startswith("--trials auto") and search["pruning_regret"] == "not measured"
    assert search["prior_trials"] + search["around_best_trials"] >= 1
    assert search["epochs_trained"] == sum(len(t.user_attrs["history"]) for t in trials)
    shown = " ".join(run_tuner("best", "studies/mlp-digits.db", cwd=tmp_path, check=True).stdout.split())
    assert "drawn around the reference" in shown and "--trials auto: the best rose" in shown


@pytest.mark.reliability
def test_trials_takes_a_number_or_auto(tmp_path):
    proc = run_tuner("optimize", "--plugin", "mlp-digits", "--trials", "many", cwd=tmp_path)
    assert proc.returncode == 2 and "'many' is not a whole number or auto" in proc.stderr
    assert not (tmp_path / "studies").exists()
