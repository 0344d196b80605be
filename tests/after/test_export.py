"""`tuner export`: TorchScript and ONNX files a person can use without tuner, verified first."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import optuna
import pytest
import torch
from helpers import lenet_digits_db, need_extra, new_study, one_error_line, run_tuner

from tuner.data import load_splits, normalize
from tuner.plugins.registry import registry

STUDY_ARGS = ("optimize", "--plugin", "lenet-digits", "--trials", "4", "--epochs", "2", "--seed", "5",
              "--pruner-startup", "1", "--quiet")


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    return new_study(tmp_path_factory, "export", *STUDY_ARGS)


def db_of(cwd: Path) -> str:
    return str(lenet_digits_db(cwd))


def digits_test_set(cwd: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """The test images as model.json says to prepare them, read without tuner's data cache."""
    digits = registry().dataset("digits")
    splits = load_splits("digits", digits, cwd / "data")
    card_mean, card_std = torch.tensor(digits.mean).view(1, -1, 1, 1), torch.tensor(digits.std).view(1, -1, 1, 1)
    images = splits.test_images
    pixels = images.float() / 255 if images.dtype == torch.uint8 else images.float()  # scaled to [0, 1]
    x = (pixels - card_mean) / card_std
    assert torch.allclose(x, normalize(splits.test_images, digits))
    return x, splits.test_labels


def check_card(card: dict, study_dir: Path, fmt: str) -> optuna.trial.FrozenTrial:
    study = optuna.load_study(study_name="lenet-digits", storage=f"sqlite:///{db_of(study_dir)}")
    best = study.best_trial
    assert card["format"] == fmt and card["trial"] == best.number and card["plugin"] == "lenet-digits"
    assert card["architecture"]["name"] == "lenet" and card["dataset"]["name"] == "digits"
    assert card["class_names"] == [str(d) for d in range(10)]
    assert card["input"]["shape"] == [1, 28, 28] and card["input"]["resize_from"] is None
    assert card["input"]["mean"] == list(registry().dataset("digits").mean)
    assert card["hyperparameters"] == {**best.user_attrs["hparams"], "epochs": len(best.user_attrs["history"])}
    assert card["validation_accuracy"] == best.value
    assert card["test_accuracy"] == study.user_attrs["test_accuracy"][str(best.number)]
    return best


@pytest.mark.slow
def test_torchscript_loads_without_tuner_and_scores_the_stored_test_accuracy(study_dir):
    proc = run_tuner("export", db_of(study_dir), "--format", "torchscript", "-o", "ts", cwd=study_dir, check=True)
    assert "verified on 359 test examples: largest logit difference" in proc.stdout
    card = json.loads((study_dir / "ts" / "model.json").read_text())
    check_card(card, study_dir, "torchscript")
    model = torch.jit.load(str(study_dir / "ts" / "model.pt"))
    x, y = digits_test_set(study_dir)
    with torch.no_grad():
        accuracy = (model(x).argmax(1) == y).float().mean().item()
    assert round(accuracy * len(y)) == round(card["test_accuracy"] * len(y))
    assert card["verification"]["max_abs_diff"] <= 1e-3 and card["verification"]["compared"]


@pytest.mark.slow
def test_onnx_runs_in_onnxruntime_and_matches_pytorch(study_dir):
    need_extra("onnxruntime", "onnx")
    import onnxruntime

    run_tuner("export", db_of(study_dir), "--format", "onnx", "-o", "onnx", cwd=study_dir, check=True)
    card = json.loads((study_dir / "onnx" / "model.json").read_text())
    check_card(card, study_dir, "onnx")
    assert sorted(p.name for p in (study_dir / "onnx").iterdir()) == ["model.json", "model.onnx"]  # one file
    session = onnxruntime.InferenceSession(str(study_dir / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    x, y = digits_test_set(study_dir)
    for n in (1, 7, len(y)):  # any batch size
        logits = session.run(None, {"images": x[:n].numpy()})[0]
        assert logits.shape == (n, 10)
    accuracy = (torch.from_numpy(logits).argmax(1) == y).float().mean().item()
    assert round(accuracy * len(y)) == round(card["test_accuracy"] * len(y))
    assert card["verification"]["test_accuracy_exported"] == card["verification"]["test_accuracy_pytorch"]


@pytest.mark.reliability
@pytest.mark.slow
def test_an_export_that_does_not_verify_writes_nothing(tmp_path):
    """The study says the model scored one example more on the test set than it does: refused."""
    run_tuner(*STUDY_ARGS[:4], "1", *STUDY_ARGS[5:], cwd=tmp_path, check=True)
    db = tmp_path / "studies" / "lenet-digits.db"
    study = optuna.load_study(study_name="lenet-digits", storage=f"sqlite:///{db}")
    measured = study.user_attrs["test_accuracy"]["0"]
    study.set_user_attr("test_accuracy", {"0": measured + 1 / 359})
    line = one_error_line(run_tuner("export", str(db), "--format", "torchscript", "-o", "out", cwd=tmp_path))
    assert "nothing was written" in line and "the study stored" in line
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))


@pytest.mark.reliability
@pytest.mark.slow
def test_trials_without_weights_and_wrong_targets_are_one_line(study_dir):
    study = optuna.load_study(study_name="lenet-digits", storage=f"sqlite:///{db_of(study_dir)}")
    kept = {study.best_trial.number, 0}
    unkept = [t.number for t in study.trials if t.state.name == "COMPLETE" and t.number not in kept]
    pruned = [t.number for t in study.trials if t.state.name == "PRUNED"]

    def export(*args: str) -> str:
        return one_error_line(run_tuner("export", db_of(study_dir), "--format", "torchscript", *args, cwd=study_dir))

    if unkept:
        assert "kept no weights" in export("--trial", str(unkept[0]), "-o", "x")
    if pruned:
        assert "not complete" in export("--trial", str(pruned[0]), "-o", "x")
    assert "no trial 42" in export("--trial", "42", "-o", "x")
    (study_dir / "a-file").write_text("keep me")
    assert "is a file" in export("-o", "a-file")
    assert (study_dir / "a-file").read_text() == "keep me"
    run_tuner("export", db_of(study_dir), "--format", "torchscript", "-o", "again", cwd=study_dir, check=True)
    before = hashlib.sha256((study_dir / "again" / "model.pt").read_bytes()).hexdigest()
    assert "already holds an exported model" in export("-o", "again")
    assert hashlib.sha256((study_dir / "again" / "model.pt").read_bytes()).hexdigest() == before
    assert not (study_dir / "x").exists()
    run_tuner("export", db_of(study_dir), "--format", "torchscript", "-o", "again", "--force", cwd=study_dir,
              check=True)
