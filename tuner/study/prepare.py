"""A study opened or created and made ready to run, in named steps.

Order of work in :func:`prepare_study`: check the inputs (plugins, the space, one tiny contract
batch) before the database is opened, so that a mistake in any of them leaves the study file as
it was; resolve the settings against what is stored; load the data; then, one process at a time,
create the study, write its provenance, record this run and queue the reference; last, restore
the best it kept.
"""

from __future__ import annotations

import importlib
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import optuna
import torch

from tuner import __version__
from tuner.contract import CONTRACT_VERSION, Param
from tuner.data.loading import default_data_dir
from tuner.data.prepared import PreparedData, load_data
from tuner.data.split import validation_cap
from tuner.errors import UsageError
from tuner.planning.check import contract_step
from tuner.planning.fusing import FusePlan, check, probe
from tuner.planning.jobs import JobsPlan, auto_jobs, largest_batch
from tuner.plugins.pair import Pair, load_pair
from tuner.search.samplers import make_pruner, make_sampler
from tuner.search.space import (
    build_space,
    describe,
    fixed_params_for,
    hyperparameters,
    parse_overrides,
    parse_params,
)
from tuner.storage import records
from tuner.storage.location import STUDIES_DIR, Location, hide_password, locate
from tuner.storage.opening import check_tuner_study, storage_for, study_lock, written
from tuner.storage.stale import fail_dead_trials, queue_retries
from tuner.storage.stores import choose_spec
from tuner.storage.weights import StudyArtifacts
from tuner.study.options import AUTO, MAX_FUSE, MAX_JOBS, OptimizeOptions
from tuner.training.device import device_kind, resolve_device, worker_devices
from tuner.trial.events import Listener
from tuner.trial.objective import Objective, enqueue_reference
from tuner.trial.recipe import DEFAULT_EPOCHS, DEFAULT_SEED, recipe

log = logging.getLogger(__name__)


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
    jobs_plan: JobsPlan | None = None  # what --jobs auto chose, and why
    fuse_plan: FusePlan | None = None  # what --fuse chose, and why


#: What :func:`check_options` found: the pair, the space, whether ``--params``/``--space`` changed it.
Checked = tuple[Pair, dict[str, Param], bool]


@dataclass
class _Inputs:
    """What the options name, checked before any database is touched."""

    pair: Pair
    space: dict[str, Param]
    overridden: bool  # --params or --space changed the space
    device: torch.device
    data_dir: Path
    location: Location


def prepare_study(options: OptimizeOptions, listener: Listener | None = None,
                  record: bool = True, storage: optuna.storages.BaseStorage | None = None,
                  checked: Checked | None = None) -> PreparedStudy:
    """Open or create the study and get everything a trial needs. ``record``: log this run in
    the study (:func:`tuner.storage.records.record_run`); ``--jobs`` workers do not, the main
    process has. ``storage``: join the study another process made, through this storage (a
    ``--ray`` actor, through the driver's gRPC proxy): nothing is created, queued or failed.
    ``checked``: what :func:`check_options` returned for these options (a session checks them
    once, before anything is made); None checks them here."""
    inputs = _check_inputs(options, checked)
    joining = storage is not None
    if storage is None:
        storage = storage_for(inputs.location, create=True, heartbeat=True)
    with written(inputs.location):  # a read, but its errors are the same: locked, gone
        stored = _stored_provenance(storage, inputs)
    settings = _resolve_settings(options, stored)
    space_desc = describe(inputs.space)
    space_changed = bool(stored) and stored.get("search_space", space_desc) != space_desc
    if space_changed and not inputs.overridden:
        log.warning("the search space differs from the one this study was created with")
    data = load_data(inputs.pair, inputs.data_dir, inputs.device, settings)
    jobs, jobs_plan = (options.jobs, None) if joining else _plan_jobs(inputs, options, data)
    fuse, fuse_plan = (options.fuse, None) if joining else _plan_fuse(inputs, options, data)
    # The plan, as numbers: the caller's options stay as given; the prepared study holds these.
    options = replace(options, jobs=jobs, fuse=fuse)
    # The first torch optimizer imports torch._dynamo: pay for it now, so that it is not counted
    # in trial 0's time (the reference's time would look worse than it is).
    importlib.import_module("torch._dynamo")
    pruner = make_pruner(options.pruner, settings["epochs"], options.pruner_startup, options.pruner_warmup)
    if joining:
        study = optuna.load_study(storage=storage, study_name=inputs.location.study_name, pruner=pruner)
        spec, keep, created = study.user_attrs[records.STORE], study.user_attrs.get(records.KEEP, 1), False
    else:
        study, spec, keep, created = _open_locked(storage, inputs, options, data, settings, pruner,
                                                  record, space_desc if space_changed else None)
    # Seeded by this process's first trial, so that a resumed run does not replay the first
    # run's draws and two processes started together do not draw alike.
    study.sampler = make_sampler(options.sampler, settings["seed"], per_process=True,
                                 prior=_prior(inputs, options), val_examples=len(data.val_y),
                                 device=device_kind(inputs.device))
    artifacts = StudyArtifacts(study, spec, inputs.location.db_path, keep)
    objective = Objective(
        arch=inputs.pair.arch, data=data, space=inputs.space, epochs=settings["epochs"], seed=settings["seed"],
        artifacts=artifacts, compile=options.compile, checkpoint_every=options.checkpoint_every,
        recipe=recipe(inputs.pair.describe(), settings, str(inputs.device), compile=options.compile,
                      data_dir=_folder(inputs.data_dir)),
    )
    if listener is not None:
        objective.listener = listener
    objective.kept = [(t.value, t.number) for t in records.best_first(study.get_trials(deepcopy=False))[:keep]]
    return PreparedStudy(inputs.pair, study, inputs.location, objective, data, inputs.device, created, settings,
                         options, artifacts, jobs_plan, fuse_plan)


def _open_locked(storage: optuna.storages.BaseStorage, inputs: _Inputs, options: OptimizeOptions,
                 data: PreparedData, settings: dict[str, Any], pruner: optuna.pruners.BasePruner, record: bool,
                 changed_space: dict[str, str] | None) -> tuple[optuna.Study, str, int, bool]:
    """Create or open the study, one process at a time from here to the queued reference: two
    terminals (or machines) starting one new study must not both create it, describe it and
    queue its reference. The study, where its weights go, how many it keeps, and whether it is new."""
    with written(inputs.location), study_lock(inputs.location, storage):
        study = optuna.create_study(storage=storage, study_name=inputs.location.study_name, pruner=pruner,
                                    direction="maximize", load_if_exists=True)
        check_tuner_study(study, inputs.location)
        spec, keep = _store_settings(study, options, inputs.location)
        stored_trials = len(study.get_trials(deepcopy=False))
        created = records.PROVENANCE not in study.user_attrs
        if created:
            _write_provenance(study, inputs, data, settings, describe(inputs.space))
        if record:
            _record_this_run(study, options, inputs.device, stored_trials, changed_space)
        fail_dead_trials(study)  # a killed run's trial, without waiting for its heartbeat to age
        queue_retries(study)
        _queue_reference(study, inputs, options)
    return study, spec, keep, created


def _plan_jobs(inputs: _Inputs, options: OptimizeOptions, data: PreparedData) -> tuple[int, JobsPlan | None]:
    """``--jobs`` as a number before anything records it, and the plan behind ``auto``
    (tuner.planning.jobs); with --ray, auto is 1: as many trials as the cluster fits."""
    if options.jobs != AUTO:
        return options.jobs, None
    if options.ray is not None:
        return 1, None
    base = hyperparameters({}, base=inputs.pair.arch.reference)
    largest = hyperparameters({"batch_size": largest_batch(inputs.space.get("batch_size"), base.batch_size)},
                              base=base)
    devices = sorted(set(worker_devices(options.device, MAX_JOBS)))
    plan = auto_jobs(inputs.pair.arch, data, largest, devices, MAX_JOBS)
    return plan.jobs, plan


def _plan_fuse(inputs: _Inputs, options: OptimizeOptions, data: PreparedData) -> tuple[int, FusePlan | None]:
    """``--fuse`` made a number (tuner.planning.fusing): auto probes the device at the reference's
    settings; K is checked by one fused step; unset, auto on a GPU and 1 on a CPU (measured there:
    docs/benchmarks.md, and a probe's timing would make a seeded study's cohorts differ by load)."""
    asked = options.fuse
    if asked is None:
        asked = AUTO if inputs.device.type == "cuda" and not options.compile and options.ray is None else 1
    if asked == 1 or (asked == AUTO and (options.trial_budget or 2) < 2):
        return 1, None  # one trial to run (--params): nothing to fuse it with
    hp = hyperparameters({}, base=inputs.pair.arch.reference)
    if asked == AUTO:
        plan = probe(inputs.pair.arch, data, hp, most=options.trial_budget or MAX_FUSE)
    else:
        why_not = check(inputs.pair.arch, data, hp)
        plan = FusePlan(1 if why_not else asked, str(data.train_x.device), why_not=why_not, asked=asked)
    return plan.size, plan


def check_options(options: OptimizeOptions) -> Checked:
    """Every option checked (values, the plugin pair, the space and ``--params`` parsed) before
    anything is created anywhere: the pair, the space, and whether ``--params``/``--space`` changed it."""
    options.validate()
    if options.ray is not None:  # the cluster is there (or started, for local) before anything is made
        from tuner.planning.ray_connect import connect

        connect(options.ray)
    pair = load_pair(options.plugin)
    # --params pins every hyperparameter it names; --space entries go on top of it.
    overrides = {**(parse_params(Path(options.params)) if options.params else {}), **parse_overrides(options.space)}
    return pair, build_space(pair.arch, overrides), bool(overrides)


def _check_inputs(options: OptimizeOptions, checked: Checked | None) -> _Inputs:
    """The options checked, the plugins loaded, the space parsed and one batch trained: nothing stored yet."""
    pair, space, overridden = checked if checked is not None else check_options(options)
    # A --ray driver trains nothing: its device is for the test set at the end; the actors
    # place their own trials.
    device = resolve_device("auto" if options.ray else options.device)
    data_dir = default_data_dir(options.data_dir)
    contract_step(pair, data_dir)  # validate at load: one tiny batch on the CPU
    location = locate(options.study_name, options.db, options.storage)
    return _Inputs(pair, space, overridden, device, data_dir, location)


def _stored_provenance(storage: optuna.storages.BaseStorage, inputs: _Inputs) -> dict[str, Any]:
    """A stored study's settings, peeked at before anything is created; refuses another plugin's study."""
    name = inputs.location.study_name
    existing = {s.study_name: s for s in storage.get_all_studies()}
    if name not in existing:
        return {}
    stored = existing[name].user_attrs.get(records.PROVENANCE, {})
    if stored.get("plugin") not in (None, inputs.pair.name):
        raise UsageError(
            f"study {name!r} in {inputs.location.shown} tunes {stored['plugin']}, not "
            f"{inputs.pair.name}; name a new study with --study NAME"
        )
    return stored


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


def _resolve_settings(options: OptimizeOptions, stored: dict[str, Any]) -> dict[str, Any]:
    """Epochs, training cap, seed and split: the stored ones for a resumed study, else the options'."""
    settings = {
        "epochs": _stored_or(options.epochs, stored, "epochs", DEFAULT_EPOCHS),
        "max_train": _stored_or(options.max_train, stored, "max_train", None),
        "seed": _stored_or(options.seed, stored, "seed", DEFAULT_SEED),
        "val_fraction": _stored_or(None, stored, "val_fraction", options.val_fraction),
    }
    # --max-train caps the validation part to the split's proportion too (3,000 train: 333
    # validation, not 6,000). Studies made before the cap keep their validation set.
    settings["max_val"] = (stored.get("max_val") if stored
                           else validation_cap(settings["max_train"], settings["val_fraction"]))
    return settings


def _store_settings(study: optuna.Study, options: OptimizeOptions, location: Location) -> tuple[str, int]:
    """Where the weights go and how many are kept: stored in the study, which keeps them."""
    attrs = study.user_attrs
    spec = choose_spec(options.artifacts, attrs.get(records.STORE), location.db_path,
                       STUDIES_DIR / f"{location.study_name}.artifacts")
    if attrs.get(records.STORE) != spec:
        study.set_user_attr(records.STORE, spec)
    keep = options.keep if options.keep is not None else attrs.get(records.KEEP, 1)
    if attrs.get(records.KEEP) != keep:
        study.set_user_attr(records.KEEP, keep)
    return spec, keep


def _write_provenance(study: optuna.Study, inputs: _Inputs, data: PreparedData, settings: dict[str, Any],
                      space_desc: dict[str, str]) -> None:
    """What a new study was made from, once, at creation: a result can be traced and re-run."""
    study.set_user_attr(records.PROVENANCE, {
        **inputs.pair.describe(),
        "tuner_version": __version__,
        "contract_version": CONTRACT_VERSION,
        "torch_version": torch.__version__,
        "optuna_version": optuna.__version__,
        "device": str(inputs.device),
        "search_space": space_desc,
        "reference_source": inputs.pair.arch.reference_source,
        # The epochs the reference's source trained it for: the study trains it for its own.
        "reference_epochs": inputs.pair.arch.reference.epochs if inputs.pair.arch.reference else None,
        "created": records.now_iso(),
        "train_examples": len(data.train_y),
        "val_examples": len(data.val_y),
        "test_examples": len(data.test_y),
        **settings,
    })


def _record_this_run(study: optuna.Study, options: OptimizeOptions, device: torch.device, stored_trials: int,
                     changed_space: dict[str, str] | None) -> None:
    records.record_run(study, {
        "tuner_version": __version__,
        "torch_version": torch.__version__,
        "device": str(device),
        "sampler": options.sampler,
        "pruner": options.pruner,
        "prior": options.prior,
        "jobs": options.jobs,
        "ray": hide_password(options.ray) if options.ray else None,
        "trials_requested": options.trials,
        "timeout_s": options.timeout,
        "trials_stored_before": stored_trials,
        "space_overrides": list(options.space),
        # Only when it is not the one in the provenance: trials before and after differ.
        **({"search_space": changed_space} if changed_space is not None else {}),
    })


def _queue_reference(study: optuna.Study, inputs: _Inputs, options: OptimizeOptions) -> None:
    """A new study, and one whose reference trial was interrupted (Ctrl-C during trial 0) or
    killed, gets its baseline queued: every study has one. A reference that failed on its own
    (a NaN loss) is not retried; ``--params`` trains no reference."""
    reference = inputs.pair.arch.reference
    if reference is None or options.params:
        return
    owed = all(t.state.name == "FAIL" and t.user_attrs.get(records.FAIL_REASON, records.INTERRUPTED)
               == records.INTERRUPTED for t in records.references(study))
    if owed:
        enqueue_reference(study, reference, inputs.space)


def _prior(inputs: _Inputs, options: OptimizeOptions) -> dict[str, Any] | None:
    """The reference as Optuna params, when trials are to be drawn around it (``--prior``)."""
    reference = inputs.pair.arch.reference
    if options.prior == "none" or reference is None or options.params:
        return None
    return fixed_params_for(reference, inputs.space) or None


def _folder(data_dir: Path) -> str | None:
    """The data folder a recipe records when there is one (``reproduce`` and ``export`` use it by default)."""
    return str(data_dir.absolute()) if data_dir.is_dir() else None
