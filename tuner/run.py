"""``tuner optimize`` and ``tuner plugins --check`` as functions: the CLI only parses and prints.

Order of work in :func:`prepare_study`: resolve plugins, parse the space, load the data, run
one tiny contract batch — all before the database is opened, so that a mistake in any of them
leaves the study file as it was.
"""

from __future__ import annotations

import importlib
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import torch

from tuner import __version__, interrupt
from tuner.artifacts import KEEP_ATTR, STORE_ATTR, StudyArtifacts, WeightsError, choose_spec, spec_for_option
from tuner.checks import StepReport, build_model, default_hyperparameters, one_step
from tuner.contract import CONTRACT_VERSION, Architecture, Dataset, Hyperparameters
from tuner.data import (
    DEFAULT_VAL_FRACTION,
    PreparedData,
    default_data_dir,
    load_splits,
    model_shape,
    normalize,
    prepare,
    resize,
)
from tuner.engine import correct_examples
from tuner.errors import PairRefused, StudyError, TrialFailed, UsageError
from tuner.heap import LongLivedHeap
from tuner.objective import REFERENCE_ATTR, Listener, Objective, enqueue_reference
from tuner.parallel import MAX_JOBS, run_parallel
from tuner.registry import Registry, registry
from tuner.sampling import SnapshotSampler
from tuner.space import build_space, describe, parse_overrides, parse_params
from tuner.study import (
    PAIRED_ATTR,
    STUDIES_DIR,
    Location,
    best_trial,
    check_tuner_study,
    fail_dead_trials,
    hide_password,
    locate,
    now_iso,
    record_run,
    reference_trial,
    storage_for,
    study_lock,
    test_accuracies,
    written,
)

log = logging.getLogger(__name__)

SAMPLERS = ("tpe", "random", "cmaes", "qmc")
PRUNERS = ("median", "hyperband", "sha", "none")


@dataclass(frozen=True)
class Pair:
    """An architecture and a dataset, loaded and checked."""

    arch_name: str
    dataset_name: str
    arch: Architecture
    dataset: Dataset
    arch_dist: str
    arch_version: str
    dataset_dist: str
    dataset_version: str

    @property
    def name(self) -> str:
        return f"{self.arch_name}-{self.dataset_name}"


def load_pair(plugin: str, reg: Registry | None = None) -> Pair:
    reg = reg or registry()
    arch_name, dataset_name = reg.split_pair(plugin)
    a_info, d_info = reg.info("architecture", arch_name), reg.info("dataset", dataset_name)
    return Pair(
        arch_name, dataset_name, reg.architecture(arch_name), reg.dataset(dataset_name),
        a_info.distribution, a_info.version, d_info.distribution, d_info.version,
    )


def resolve_device(spec: str) -> torch.device:
    """``auto`` (CUDA when there is one), ``cpu``, ``cuda`` or ``cuda:N``."""
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise UsageError(f"--device {spec!r}: use auto, cpu, cuda or cuda:N") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {spec!r}: use auto, cpu, cuda or cuda:N")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"--device {spec}: no CUDA GPU is visible here; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(
                f"--device {spec}: only {torch.cuda.device_count()} GPU(s) here (cuda:0..)"
            )
    return device


def contract_step(pair: Pair, data_dir: Path, n: int = 2) -> StepReport:
    """Build the pair with its reference settings and train one batch of ``n`` on the CPU."""
    splits = load_splits(pair.dataset_name, pair.dataset, data_dir, pair.dataset_dist)
    shape = model_shape(pair.arch, pair.dataset)
    hp = default_hyperparameters(pair.arch)
    try:
        model = build_model(pair.arch, shape, hp, name=pair.arch_name, distribution=pair.arch_dist)
    except PairRefused as e:
        raise PairRefused(f"{pair.arch_name} cannot take {pair.dataset_name}: {e}") from None
    x = normalize(splits.train_images[:n], pair.dataset)
    if pair.arch.input_size is not None:
        x = resize(x, pair.arch.input_size)
    return one_step(model, x, splits.train_labels[:n], shape, name=pair.arch_name,
                    distribution=pair.arch_dist)


def make_sampler(name: str, seed: int | None, per_process: bool = False) -> optuna.samplers.BaseSampler:
    """The sampler ``--sampler`` names, reading the study once per trial (see tuner.sampling).

    ``per_process``: draw from the seed plus the number of this process's first trial, so that
    processes started at the same moment on one study (two terminals, two machines, --jobs
    workers) draw apart, while a single seeded process draws what it always did: its first
    trial is the number of trials stored before it."""
    restart = None
    if per_process and seed is not None:
        def restart(first_trial: int) -> optuna.samplers.BaseSampler:
            return _base_sampler(name, (seed + first_trial) % (MAX_SEED + 1))
    return SnapshotSampler(_base_sampler(name, seed), restart=restart)


def _base_sampler(name: str, seed: int | None) -> optuna.samplers.BaseSampler:
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "cmaes":
        # CMA-ES handles the numeric part; categorical choices fall back to random sampling.
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    if name == "qmc":
        return optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)
    raise UsageError(f"--sampler {name!r}: choose one of {', '.join(SAMPLERS)}")


def make_pruner(name: str, epochs: int, startup: int, warmup: int) -> optuna.pruners.BasePruner:
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=startup, n_warmup_steps=warmup)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1))
    if name == "sha":
        return optuna.pruners.SuccessiveHalvingPruner(min_resource=1)
    if name == "none":
        return optuna.pruners.NopPruner()
    raise UsageError(f"--pruner {name!r}: choose one of {', '.join(PRUNERS)}")


@dataclass
class OptimizeOptions:
    """Everything ``tuner optimize`` takes. ``None`` means: the stored value, else the default."""

    plugin: str
    trials: int | None = 20
    study: str | None = None
    db: str | None = None
    storage: str | None = None
    timeout: float | None = None
    epochs: int | None = None
    seed: int | None = None
    device: str = "auto"
    data_dir: str | None = None
    max_train: int | None = None
    sampler: str = "tpe"
    pruner: str = "median"
    pruner_startup: int = 3
    pruner_warmup: int = 0
    space: Sequence[str] = ()
    val_fraction: float = DEFAULT_VAL_FRACTION
    jobs: int = 1
    compile: bool = False
    artifacts: str | None = None
    keep: int | None = None
    params: str | None = None  # a JSON file of hyperparameters to train as they are (no reference)

    def validate(self) -> None:
        """Refuse impossible values before anything is read or written."""
        if self.study is not None:
            check_study_name(self.study)
        if self.db is not None:
            if not self.db.strip():
                raise UsageError("--db is empty; give a file path such as studies/x.db")
            if "://" in self.db:
                raise UsageError(f"--db takes a file path, not a URL; use --storage {hide_password(self.db)}")
        if self.seed is not None and not 0 <= self.seed <= MAX_SEED:
            raise UsageError(f"--seed must be between 0 and {MAX_SEED}, got {self.seed}")
        if self.timeout is not None and not math.isfinite(self.timeout):
            raise UsageError(f"--timeout must be a finite number of seconds, got {self.timeout}")
        if self.trials is not None and self.trials < 1:
            raise UsageError(f"--trials must be at least 1, got {self.trials}")
        if self.timeout is not None and self.timeout <= 0:
            raise UsageError(f"--timeout must be a positive number of seconds, got {self.timeout}")
        if self.epochs is not None and self.epochs < 1:
            raise UsageError(f"--epochs must be at least 1, got {self.epochs}")
        if self.max_train is not None and self.max_train < 2:
            raise UsageError(f"--max-train must be at least 2, got {self.max_train}")
        if self.artifacts is not None:
            spec_for_option(self.artifacts)
        if self.keep is not None and self.keep < 1:
            raise UsageError(f"--keep must be at least 1 (the best trial), got {self.keep}")
        if not 1 <= self.jobs <= MAX_JOBS:
            raise UsageError(f"--jobs must be between 1 and {MAX_JOBS}, got {self.jobs}")
        if self.pruner_startup < 0 or self.pruner_warmup < 0:
            raise UsageError("--pruner-startup and --pruner-warmup must be >= 0")
        if self.sampler not in SAMPLERS:
            raise UsageError(f"--sampler {self.sampler!r}: choose one of {', '.join(SAMPLERS)}")
        if self.pruner not in PRUNERS:
            raise UsageError(f"--pruner {self.pruner!r}: choose one of {', '.join(PRUNERS)}")


DEFAULT_EPOCHS = 10
MAX_SEED = 2**32 - 1  # numpy's seeds, which Optuna's samplers use
_NAME_MAX = 200  # a study name is a file name (plus ".db", ".artifacts") in the studies folder


def check_study_name(name: str) -> None:
    """A study name stays inside the studies folder: no path, no control characters, not too long."""
    if not name.strip():
        raise UsageError("--study is empty; give a name such as lenet-digits-2")
    bad = [c for c in name if c in "/\\" or ord(c) < 32 or ord(c) == 127]
    if bad or name in (".", "..") or name.startswith("."):
        raise UsageError(f"--study {name!r}: a study name cannot contain /, \\ or control characters, nor "
                         "start with a dot; use letters, digits, - and _")
    if len(name.encode()) > _NAME_MAX:
        raise UsageError(f"--study is {len(name.encode())} bytes long; keep it under {_NAME_MAX}")


@dataclass
class PreparedStudy:
    """A study ready to run: opened (or created), data on the device, objective built."""

    pair: Pair
    study: optuna.Study
    location: Location
    objective: Objective
    data: PreparedData
    device: torch.device
    created: bool
    settings: dict[str, Any] = field(default_factory=dict)
    options: OptimizeOptions | None = None
    artifacts: StudyArtifacts | None = None


def _stored_or(options_value: Any, stored: dict[str, Any], key: str, default: Any) -> Any:
    """A resumed study keeps its settings; asking for a different one is an error."""
    if key not in stored:
        return default if options_value is None else options_value
    if options_value is not None and options_value != stored[key]:
        raise UsageError(
            f"this study was run with {key.replace('_', '-')}={stored[key]}; keep it to resume, "
            "or start a new study with --study NAME"
        )
    return stored[key]


def prepare_study(options: OptimizeOptions, listener: Listener | None = None,
                  record: bool = True) -> PreparedStudy:
    """Open or create the study and get everything a trial needs. ``record``: log this run in
    the study (``tuner.study.record_run``); ``--jobs`` workers do not, the main process has."""
    options.validate()
    pair = load_pair(options.plugin)
    # --params pins every hyperparameter it names; --space entries go on top of it.
    overrides = {**(parse_params(Path(options.params)) if options.params else {}), **parse_overrides(options.space)}
    space = build_space(pair.arch, overrides)
    device = resolve_device(options.device)
    data_dir = default_data_dir(options.data_dir)
    contract_step(pair, data_dir)  # validate at load: one tiny batch on the CPU
    study_name = options.study or pair.name
    location = locate(study_name, options.db, options.storage)

    # Peek at a stored study's settings before creating anything.
    storage = storage_for(location, create=True, heartbeat=True)
    existing = {s.study_name: s for s in storage.get_all_studies()}
    stored: dict[str, Any] = {}
    if study_name in existing:
        stored = existing[study_name].user_attrs.get("provenance", {})
        if stored.get("plugin") not in (None, pair.name):
            raise UsageError(
                f"study {study_name!r} in {location.shown} tunes {stored['plugin']}, not "
                f"{pair.name}; name a new study with --study NAME"
            )
    settings = {
        "epochs": _stored_or(options.epochs, stored, "epochs", DEFAULT_EPOCHS),
        "max_train": _stored_or(options.max_train, stored, "max_train", None),
        "seed": _stored_or(options.seed, stored, "seed", 0),
        "val_fraction": _stored_or(None, stored, "val_fraction", options.val_fraction),
    }
    # --max-train caps the validation part to the split's proportion too (3,000 train: 333
    # validation, not 6,000). Studies made before the cap keep their validation set.
    settings["max_val"] = stored.get("max_val") if stored else validation_cap(settings)
    space_desc = describe(space)
    space_changed = bool(stored) and stored.get("search_space", space_desc) != space_desc
    if space_changed and not overrides:
        log.warning("the search space differs from the one this study was created with")

    data = load_data(pair, data_dir, device, settings)
    # The first torch optimizer imports torch._dynamo (1.1-1.7 s here): pay it now, so that it is
    # not counted in trial 0's time (the reference's time would look worse than it is).
    importlib.import_module("torch._dynamo")
    pruner = make_pruner(options.pruner, settings["epochs"], options.pruner_startup,
                         options.pruner_warmup)
    # One process at a time from here to the queued reference: two terminals (or machines)
    # starting one new study must not both create it, describe it and queue its reference.
    with written(location), study_lock(location, storage):
        study = optuna.create_study(
            storage=storage, study_name=study_name, pruner=pruner, direction="maximize",
            load_if_exists=True,
        )
        check_tuner_study(study, location)
        attrs = study.user_attrs
        spec = choose_spec(options.artifacts, attrs.get(STORE_ATTR), location.db_path,
                           STUDIES_DIR / f"{study_name}.artifacts")
        if attrs.get(STORE_ATTR) != spec:
            study.set_user_attr(STORE_ATTR, spec)
        keep = options.keep if options.keep is not None else attrs.get(KEEP_ATTR, 1)
        if attrs.get(KEEP_ATTR) != keep:
            study.set_user_attr(KEEP_ATTR, keep)
        stored_trials = len(study.get_trials(deepcopy=False))
        created = "provenance" not in attrs
        if created:
            study.set_user_attr("provenance", {
                "plugin": pair.name,
                "architecture": {"name": pair.arch_name, "distribution": pair.arch_dist,
                                 "version": pair.arch_version},
                "dataset": {"name": pair.dataset_name, "distribution": pair.dataset_dist,
                            "version": pair.dataset_version},
                "tuner_version": __version__,
                "contract_version": CONTRACT_VERSION,
                "torch_version": torch.__version__,
                "optuna_version": optuna.__version__,
                "device": str(device),
                "search_space": space_desc,
                "reference_source": pair.arch.reference_source,
                "created": now_iso(),
                "train_examples": len(data.train_y),
                "val_examples": len(data.val_y),
                "test_examples": len(data.test_y),
                **settings,
            })
        if record:
            record_run(study, {
                "tuner_version": __version__,
                "torch_version": torch.__version__,
                "device": str(device),
                "sampler": options.sampler,
                "pruner": options.pruner,
                "jobs": options.jobs,
                "trials_requested": options.trials,
                "timeout_s": options.timeout,
                "trials_stored_before": stored_trials,
                "space_overrides": list(options.space),
                # Only when it is not the one in the provenance: trials before and after differ.
                **({"search_space": space_desc} if space_changed else {}),
            })
        fail_dead_trials(study)  # a killed run's trial, without waiting for its heartbeat to age
        if pair.arch.reference is not None and not options.params and _reference_still_owed(study):
            enqueue_reference(study, pair.arch.reference, space)
    # Seeded by this process's first trial, so that a resumed run does not replay the first
    # run's draws and two processes started together do not draw alike.
    study.sampler = make_sampler(options.sampler, settings["seed"], per_process=True)
    artifacts = StudyArtifacts(study, spec, location.db_path, keep)
    objective = Objective(
        arch=pair.arch, data=data, space=space, epochs=settings["epochs"], seed=settings["seed"],
        artifacts=artifacts, compile=options.compile, recipe=run_recipe(pair, settings, device, options.compile),
    )
    if listener is not None:
        objective.listener = listener
    _restore_kept(study, objective, keep)
    return PreparedStudy(pair, study, location, objective, data, device, created, settings, options, artifacts)


def validation_cap(settings: dict[str, Any]) -> int | None:
    """Validation examples that keep the split's proportion to ``max_train`` training ones."""
    if settings["max_train"] is None:
        return None
    fraction = settings["val_fraction"]
    return max(1, round(settings["max_train"] * fraction / (1 - fraction)))


def load_data(pair: Pair, data_dir: Path, device: torch.device, settings: dict[str, Any]) -> PreparedData:
    """The study's data: its split seed, validation fraction and training cap (``settings``
    holds ``seed``, ``val_fraction`` and ``max_train``, as the provenance and a recipe do)."""
    splits = load_splits(pair.dataset_name, pair.dataset, data_dir, pair.dataset_dist)
    return prepare(
        splits, pair.dataset, pair.arch, device=device, val_fraction=settings["val_fraction"],
        split_seed=settings["seed"], max_train=settings["max_train"], max_val=settings.get("max_val"),
    )


def run_recipe(pair: Pair, settings: dict[str, Any], device: torch.device, compile: bool) -> dict[str, Any]:
    """What every trial of this run records to be re-run (each adds its seed and threads)."""
    return {
        "plugin": pair.name,
        "architecture": {"name": pair.arch_name, "distribution": pair.arch_dist, "version": pair.arch_version},
        "dataset": {"name": pair.dataset_name, "distribution": pair.dataset_dist, "version": pair.dataset_version},
        "seed": settings["seed"], "val_fraction": settings["val_fraction"], "max_train": settings["max_train"],
        "max_val": settings.get("max_val"), "epochs": settings["epochs"], "device": str(device), "compile": compile,
        "tuner_version": __version__, "torch_version": torch.__version__,
    }


def _reference_still_owed(study: optuna.Study) -> bool:
    """True for a new study, and for one whose reference trial was interrupted (Ctrl-C during
    trial 0) or killed: every study gets its baseline. A reference that failed on its own (a
    NaN loss) is not retried."""
    references = [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(REFERENCE_ATTR)]
    return all(t.state.name == "FAIL" and t.user_attrs.get("fail_reason", "interrupted") == "interrupted"
               for t in references)


def _restore_kept(study: optuna.Study, objective: Objective, keep: int) -> None:
    """A resumed study continues from the best trials it stored (whose weights are kept)."""
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    objective.kept = sorted(((t.value, t.number) for t in done), key=lambda k: (-k[0], k[1]))[:keep]


def run_study(
    prepared: PreparedStudy, trials: int | None, timeout: float | None,
    callbacks: Sequence[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]] = (),
    jobs: int = 1,
) -> None:
    """Run trials, ``jobs`` at a time (see tuner.parallel). Failed trials (NaN loss, out of
    memory) are recorded and the study goes on; Ctrl-C ends the running trials as failed
    ("interrupted") and propagates. Afterwards only the weights the study keeps are left."""
    try:
        with written(prepared.location):
            if jobs > 1:
                assert prepared.options is not None, "prepare_study records the options workers need"
                run_parallel(prepared.options, prepared.study, jobs, trials, timeout, prepare=prepare_study,
                             listener=prepared.objective.listener, callbacks=callbacks,
                             device_type=prepared.device.type)
                return
            with LongLivedHeap() as heap, interrupt.deferred():
                prepared.study.optimize(
                    prepared.objective, n_trials=trials, timeout=timeout, catch=(TrialFailed,),
                    callbacks=[prepared.objective.after_trial, *callbacks, heap, interrupt.stop_study],
                    gc_after_trial=False,
                )
    finally:
        if prepared.artifacts is not None:
            prepared.artifacts.tidy()


def measure_test_accuracy(prepared: PreparedStudy) -> dict[int, float]:
    """Test accuracy of the best and the reference trial, measured once per study (again when
    a resume finds a new best); with both, how many validation and test examples only one of
    them gets right (``PAIRED_ATTR``: the paired standard error of their difference). Weights
    that are missing or damaged are skipped with one warning line."""
    study = prepared.study
    stored = test_accuracies(study)
    try:
        wanted = [best_trial(study)]
    except StudyError:  # no completed trial: nothing to report
        return stored
    ref = reference_trial(study)
    if ref is not None and ref.state.name == "COMPLETE" and ref.number != wanted[0].number:
        wanted.append(ref)
    numbers = [t.number for t in wanted]
    paired = study.user_attrs.get(PAIRED_ATTR, {})
    if prepared.artifacts is None or (all(n in stored for n in numbers)
                                      and (len(wanted) < 2 or paired.get("trials") == numbers)):
        return stored
    data, masks = prepared.data, {}
    for trial in wanted:
        try:
            state = prepared.artifacts.load_state(trial)
        except WeightsError as e:
            log.warning("test accuracy of trial %d not measured: %s", trial.number, e)
            continue
        hp = Hyperparameters.from_dict(trial.user_attrs["hparams"])
        model = prepared.pair.arch.build(data.shape, hp)
        model.load_state_dict(state)
        model.to(prepared.device)
        amp = prepared.device.type == "cuda"
        masks[trial.number] = (correct_examples(model, data, data.val_x, data.val_y, amp=amp),
                               correct_examples(model, data, data.test_x, data.test_y, amp=amp))
        stored[trial.number] = masks[trial.number][1].float().mean().item()
    if masks:
        study.set_user_attr("test_accuracy", {str(k): v for k, v in stored.items()})
    if len(masks) == 2:
        (b_val, b_test), (r_val, r_test) = masks[numbers[0]], masks[numbers[1]]
        study.set_user_attr(PAIRED_ATTR, {
            "trials": numbers,
            "validation": {"n": len(b_val), "only_best": int((b_val & ~r_val).sum()),
                           "only_reference": int((r_val & ~b_val).sum())},
            "test": {"n": len(b_test), "only_best": int((b_test & ~r_test).sum()),
                     "only_reference": int((r_test & ~b_test).sum())},
        })
    return stored
