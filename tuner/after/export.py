"""Hand over a trial's model: TorchScript or ONNX plus a model.json, verified before it is written.

The verification runs the exported model and the PyTorch model over the whole test set on the
CPU: their outputs must agree (the largest absolute difference is recorded) and the exported
model's test accuracy must equal the PyTorch model's. Files are written to a temporary folder
beside the target and moved into place only when the check passes.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
import torch
from optuna.trial import FrozenTrial
from torch import nn

from tuner import __version__
from tuner.after.files import make_folder, os_error, refuse_study_files, study_files
from tuner.after.formats import FORMATS
from tuner.after.rebuild import Rebuilt, find_trial, hyperparameters_of, rebuild
from tuner.after.summary import trained_params
from tuner.data.prepared import PreparedData
from tuner.errors import StudyError, TunerError, UsageError, first_line
from tuner.storage.records import best_trial, test_accuracies, view
from tuner.storage.weights import for_study
from tuner.training.loop import eval_batch_size

#: Largest absolute difference of logits accepted between the exported and the PyTorch model.
MAX_ABS_DIFF = 1e-3


class ExportFailed(TunerError):
    """The exported model did not match the PyTorch model, or the exporter refused it."""


@dataclass
class Exported:
    folder: Path
    model_file: Path
    card: dict[str, Any]  # what model.json holds


def trial_to_export(study: optuna.Study, number: int | None) -> FrozenTrial:
    """Trial ``number`` (default: the best); it must have completed."""
    trial = best_trial(study) if number is None else find_trial(study, number)
    if trial.state.name != "COMPLETE":
        raise StudyError(f"trial {trial.number} is {trial.state.name.lower()}, not complete: it has no final "
                         "weights; export a complete trial (see `tuner trials --state complete`)")
    return trial


def export(study: optuna.Study, db_path: Path | None, number: int | None, fmt: str, out: Path,
           data_dir: Path | None = None, force: bool = False) -> Exported:
    """Export trial ``number`` (default: the best) of ``study`` as ``fmt`` into folder ``out``."""
    if fmt not in FORMATS:
        raise UsageError(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}")
    check_target(study, db_path, out, force)
    trial = trial_to_export(study, number)
    store = for_study(study, db_path)
    if store is None:
        raise StudyError(f"study {study.study_name!r} names no artifact store, so trial {trial.number}'s weights "
                         "cannot be found")
    state = store.load_state(trial)  # WeightsError (one line) when not kept, missing or damaged
    rebuilt = rebuild(study, trial, data_dir, "cpu")
    model = rebuilt.pair.arch.build(rebuilt.data.shape, hyperparameters_of(trial))
    model.load_state_dict(state)
    model.eval()
    make_folder(out.parent)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as e:
        raise os_error(out, e) from None
    try:
        model_file = staging / FORMATS[fmt]
        run = _write_torchscript(model, rebuilt.data, model_file) if fmt == "torchscript" else \
            _write_onnx(model, rebuilt.data, model_file)
        check = verify(model, run, rebuilt.data)
        _same_as_stored(study, trial, rebuilt, check)
        card = model_card(study, trial, rebuilt, fmt, check)
        (staging / "model.json").write_text(json.dumps(card, indent=2) + "\n")
        _move_into_place(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return Exported(out, out / FORMATS[fmt], card)


def check_target(study: optuna.Study, db_path: Path | None, out: Path, force: bool) -> None:
    """Refuse, before anything is built, an ``-o`` that is a file, one of the study's own files, a
    folder with an earlier export (without ``--force``), or one holding a model no export made."""
    if out.exists() and not out.is_dir():
        raise UsageError(f"-o {out} is a file; give a folder (it is created)")
    refuse_study_files(out, study_files(study, db_path))
    if not out.is_dir():
        return
    if (out / "model.json").exists():
        if not force:
            raise UsageError(f"{out} already holds an exported model; give another folder or --force")
        return
    foreign = [name for name in FORMATS.values() if (out / name).exists()]
    if foreign:
        raise UsageError(f"{out} holds {foreign[0]} that no tuner export made (there is no model.json beside it); "
                         "give another folder")


def _example(data: PreparedData, n: int = 2) -> torch.Tensor:
    return data.fit(data.test_x[:n])


def _write_torchscript(model: nn.Module, data: PreparedData, path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch marks TorchScript deprecated; it is what was asked for
        try:
            traced = torch.jit.trace(model, _example(data))
        except Exception as e:
            raise ExportFailed(f"torch.jit.trace could not trace this model ({first_line(e, 200)}); "
                               "try --format onnx") from None
        traced.save(str(path))
        loaded = torch.jit.load(str(path))  # verify what was written, not what is in memory
    return lambda x: loaded(x)


def _write_onnx(model: nn.Module, data: PreparedData, path: Path) -> Callable[[torch.Tensor], torch.Tensor]:
    try:
        # The exporter needs both; say so here rather than deep inside it.
        import onnx
        import onnxscript  # noqa: F401
    except ImportError:
        raise UsageError("--format onnx needs the onnx packages: pip install 'tuner[onnx]'") from None
    batch = torch.export.Dim("batch", min=1)
    quiet = io.StringIO()
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(quiet):
            warnings.simplefilter("ignore")
            torch.onnx.export(model, (_example(data),), str(path), input_names=["images"],
                              output_names=["logits"], dynamic_shapes=({0: batch},), dynamo=True,
                              external_data=False)
    except Exception as e:
        raise ExportFailed(f"torch.onnx.export failed ({first_line(e, 200)}); try --format torchscript") from None
    try:
        import onnxruntime
    except ImportError:  # checked structurally only; model.json says the outputs were not compared
        import onnx

        onnx.checker.check_model(str(path))
        return None  # type: ignore[return-value]
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: torch.from_numpy(session.run(None, {name: x.numpy()})[0])


@torch.inference_mode()
def verify(model: nn.Module, run: Callable[[torch.Tensor], torch.Tensor] | None, data: PreparedData) -> dict[str, Any]:
    """Both models over the test set: the largest absolute logit difference and both accuracies."""
    n = len(data.test_y)
    correct_torch = correct_exported = 0
    max_diff = 0.0
    bs = eval_batch_size(data)
    for start in range(0, n, bs):
        x, y = data.fit(data.test_x[start : start + bs]), data.test_y[start : start + bs]
        expected = model(x)
        correct_torch += int((expected.argmax(1) == y).sum())
        if run is None:
            continue
        got = run(x)
        max_diff = max(max_diff, float((got - expected).abs().max()))
        correct_exported += int((got.argmax(1) == y).sum())
    check: dict[str, Any] = {"test_examples": n, "test_accuracy_pytorch": correct_torch / n,
                             "compared": run is not None}
    if run is None:
        return check
    check.update(max_abs_diff=max_diff, test_accuracy_exported=correct_exported / n)
    if max_diff > MAX_ABS_DIFF or correct_exported != correct_torch:
        raise ExportFailed(f"the exported model does not match the PyTorch model on the test set (largest logit "
                           f"difference {max_diff:.3g}, accuracy {correct_exported / n:.2%} vs "
                           f"{correct_torch / n:.2%}); nothing was written")
    return check


def _same_as_stored(study: optuna.Study, trial: FrozenTrial, rebuilt: Rebuilt, check: dict[str, Any]) -> None:
    """The model scores on the test set what the study stored for it (when both ran on the CPU:
    a GPU study measured in bf16, which may round a near-tie the other way)."""
    stored = test_accuracies(study).get(trial.number)
    check["test_accuracy_stored"] = stored
    now = check.get("test_accuracy_exported", check["test_accuracy_pytorch"])
    n = check["test_examples"]
    if stored is not None and rebuilt.recipe.get("device") == "cpu" and round(now * n) != round(stored * n):
        raise ExportFailed(f"trial {trial.number}'s model scores {now:.2%} on the test set here, but the study stored "
                           f"{stored:.2%}: the weights or the data changed since; nothing was written")


def model_card(study: optuna.Study, trial: FrozenTrial, rebuilt: Rebuilt, fmt: str,
               check: dict[str, Any]) -> dict[str, Any]:
    """Everything needed to use the exported model: what it is, what it takes, how good it is."""
    pair, data, recipe = rebuilt.pair, rebuilt.data, rebuilt.recipe
    dataset = pair.dataset
    stored_test = test_accuracies(study).get(trial.number)
    return {
        "format": fmt,
        "file": FORMATS[fmt],
        "study": study.study_name,
        "trial": trial.number,
        **pair.describe(),
        "tuner_version": __version__,
        "torch_version": torch.__version__,
        "trained_with": {"tuner_version": recipe.get("tuner_version"), "torch_version": recipe.get("torch_version"),
                         "device": recipe.get("device")},
        "class_names": list(dataset.class_names),
        "input": {
            "shape": [data.shape.channels, data.shape.height, data.shape.width],  # per image, NCHW batches
            "dtype": "float32",
            "pixels": "scaled to [0, 1], then (x - mean) / std per channel",
            "mean": list(dataset.mean),
            "std": list(dataset.std),
            # Stored images of another size are resized first (bilinear, antialiased).
            "resize_from": list(dataset.image_size) if data.input_size is not None else None,
        },
        "output": "logits, one per class in class_names order (softmax for probabilities)",
        "hyperparameters": trained_params(view(trial)),
        "validation_accuracy": trial.value,
        "test_accuracy": stored_test if stored_test is not None else check["test_accuracy_pytorch"],
        "verification": check,
    }


def _move_into_place(staging: Path, out: Path) -> None:
    """Each file replaces its namesake in ``out`` atomically; an earlier export's model of another
    format is removed; model.json goes last, so a folder with a model.json always holds the one
    model it describes."""
    make_folder(out)
    names = sorted(os.listdir(staging), key=lambda n: n == "model.json")
    try:
        for name in names:
            if name == "model.json":
                for stale in set(FORMATS.values()) - set(names):
                    with contextlib.suppress(FileNotFoundError):
                        (out / stale).unlink()
            os.replace(staging / name, out / name)
    except OSError as e:
        raise os_error(out, e) from None
