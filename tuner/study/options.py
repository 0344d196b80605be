"""Every option of ``tuner optimize``, defined once: the dataclass the CLI's flags and the Python
API's keywords are built from, each field with its default, its help and its check.

To add an option: a field here with :func:`option` (its help and how it reads on the command
line) and its check in :meth:`OptimizeOptions.validate`; ``tuner optimize --NAME`` and
``tuner.optimize(..., NAME=)`` then take it.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from tuner.data.split import DEFAULT_VAL_FRACTION
from tuner.errors import UsageError
from tuner.search.samplers import MAX_SEED, PRIORS, PRUNERS, SAMPLERS
from tuner.trial.recipe import DEFAULT_EPOCHS, DEFAULT_SEED

DEFAULT_TRIALS = 20
AUTO = "auto"  # --trials auto (tuner.search.stopping)
MAX_JOBS = 64
MAX_FUSE = 64
_NAME_MAX = 200  # a study name is a file name (plus ".db", ".artifacts") in the studies folder
DATA_DIR_HELP = "Dataset folder (default: $TUNER_DATA_DIR, else ~/.cache/tuner/data)."


@dataclass(frozen=True)
class Flag:
    """How one option reads on the command line (``tuner.cli.optimize`` builds click options from these)."""

    help: str
    type: Any = None  # int, float, a tuple of choices, or "path"
    short: str | None = None
    metavar: str | None = None
    multiple: bool = False
    is_flag: bool = False
    required: bool = False
    show_default: bool = False


def option(default: Any, help: str, **flag: Any) -> Any:
    """A field of :class:`OptimizeOptions` that is also a flag of ``tuner optimize``."""
    return field(default=default, metadata={"flag": Flag(help=help, **flag)})


@dataclass
class OptimizeOptions:
    """Everything ``tuner optimize`` takes. ``None`` means: the stored value, else the default."""

    plugin: str = option(None, "What to tune, e.g. alexnet-mnist.", short="-p", metavar="ARCH-DATASET",
                         required=True)
    trials: int | str | None = option(None, "New trials to run now; a resumed study adds this many to those it "
                                      f"holds [default: {DEFAULT_TRIALS}; 1 with --params]. auto: until more "
                                      "trials stop showing a better model (docs/usage.md).", type="trials",
                                      metavar="N|auto")
    study: str | None = option(None, "Study name (default: the plugin).")
    db: str | None = option(None, "SQLite file (default: studies/<study>.db).")
    storage: str | None = option(None, "Any SQLAlchemy database URL, instead of --db.")
    timeout: float | None = option(None, "Stop after SECONDS: no trial starts after it; a running one stops at an "
                                   "epoch's end when its next would end after it (saved: the same command goes on).",
                                   type=float)
    epochs: int | None = option(None, f"Epochs per trial (default {DEFAULT_EPOCHS}; a study keeps its own).",
                                type=int)
    seed: int | None = option(None, f"Seed of sampler, split and weights (default {DEFAULT_SEED}; a study keeps "
                              "its own).", type=int)
    device: str = option("auto", "auto, cpu, cuda or cuda:N; with --jobs, cuda spreads the workers over every "
                         "visible GPU, and cuda:0,cuda:2 over those.", show_default=True)
    data_dir: str | None = option(None, DATA_DIR_HELP)
    max_train: int | None = option(None, "Cap on training examples, for quick runs; the validation part is cut "
                                   "to the same proportion (N/9 at the default 10%). A study keeps it.", type=int)
    sampler: str = option("tpe", "How trials are drawn.", type=tuple(SAMPLERS), show_default=True)
    pruner: str = option("median", "How hopeless trials are stopped.", type=tuple(PRUNERS), show_default=True)
    pruner_startup: int = option(3, "median: trials that complete before any is pruned.", type=int,
                                 show_default=True)
    pruner_warmup: int | None = option(None, "Epochs a trial trains before it can be pruned (default: a "
                                       "sixth of --epochs, to the nearest). Never pruned either: the 2 epochs "
                                       "after its learning rate was lowered.", type=int)
    prior: str = option("reference", "Where trials are drawn: the reference's learning rate walked up or down "
                        "first, then around the reference settings, less as trials finish and far less once "
                        "another trial beats them ('reference'), or by the sampler alone ('none').",
                        type=tuple(PRIORS), show_default=True)
    space: Sequence[str] = option((), "Override the search space: lr=1e-5:1e-1:log, batch_size=32,64, "
                                  "dropout=0.3, or a TOML file. Repeatable.", multiple=True,
                                  metavar="NAME=SPEC|FILE.toml")
    params: str | None = option(None, "Train exactly these hyperparameters (the output of `tuner best --json`, "
                                'or {"lr": 0.01, ...}): each is pinned, and no reference trial is queued.',
                                type="path", metavar="FILE.json")
    jobs: int | str = option(1, "Trials trained at once, each in its own process (small models cannot fill a "
                             "GPU alone); with --device cuda, over every GPU. auto: as many as fit, from one "
                             "measured step at the largest batch size. With more than 1, --seed no longer fixes "
                             "the draws.", type="jobs", short="-j", show_default=True, metavar="N|auto")
    fuse: int | str | None = option(None, "Train K trials at once as one stacked model (K small models fill a "
                                    "device one cannot); each is still its own trial. auto: K from a short probe "
                                    "on the device (1 where fusing does not pay); 1: off [default: auto on a "
                                    "GPU, 1 on a CPU].", type="fuse", metavar="K|auto")
    ray: str | None = option(None, "Run the trials in Ray actors that Ray places across its cluster: auto (the "
                             "cluster this machine is a node of), HOST:PORT (its head) or local (start Ray "
                             "here). Needs tuner[ray]; docs/scale-out.md.", metavar="ADDRESS")
    cpus_per_trial: float = option(1.0, "--ray: CPUs each trial's actor asks Ray for (and its torch threads).",
                                   type=float, show_default=True)
    gpus_per_trial: float | None = option(None, "--ray: GPUs each trial's actor asks Ray for; 0.25 puts four "
                                          "trials on one GPU [default: 1 with --device cuda, else 0].",
                                          type=float)
    compile: bool = option(False, "torch.compile each trial's model: the first trial pays the compile time, "
                           "later ones reuse it. Pays on a GPU for long trials; on a CPU it did not "
                           "(docs/benchmarks.md).", is_flag=True)
    artifacts: str | None = option(None, "Where the study keeps trial weights (default: beside the .db file, "
                                   "studies/x.db -> studies/x.artifacts/). Stored in the study: later runs and "
                                   "`best` find it.", metavar="DIR|s3://BUCKET")
    keep: int | None = option(None, "Keep the weights of the K best trials, not only the best (a study keeps "
                              "it).", type=int)
    checkpoint_every: float = option(30.0, "Save the running trial's state at an epoch's end once SECONDS of "
                                     "training passed since the last save: an interrupted or killed trial then "
                                     "resumes from there (0: every epoch; longer when a save would cost over 2% "
                                     "of the training between).", type=float, show_default=True, metavar="SECONDS")
    mlflow: str | None = option(None, "Log each trial to MLflow as one run: hyperparameters, per-epoch metrics, "
                                "state (sqlite:///mlflow.db, http://host:5000; needs tuner[mlflow]).",
                                metavar="URI")
    val_fraction: float = DEFAULT_VAL_FRACTION  # not a flag: a study keeps its own

    def __post_init__(self) -> None:
        if self.trials is None:
            self.trials = 1 if self.params else DEFAULT_TRIALS
        if isinstance(self.trials, str) and self.trials.strip().lower() == AUTO:
            self.trials = AUTO
        if isinstance(self.jobs, str) and self.jobs.strip().lower() == AUTO:
            self.jobs = AUTO
        if isinstance(self.fuse, str) and self.fuse.strip().lower() == AUTO:
            self.fuse = AUTO
        self.space = tuple(self.space)

    @property
    def cohort_size(self) -> int:
        """Trials drawn and trained at a time (``--fuse``, once planned a number; 1: each alone)."""
        return self.fuse if isinstance(self.fuse, int) else 1

    @property
    def study_name(self) -> str:
        """The study's name: ``--study``, else the plugin pair's (``lenet-digits``)."""
        return self.study or self.plugin

    @property
    def trial_budget(self) -> int | None:
        """The trials to run now; None with ``--trials auto`` (at most ``stopping.AUTO_MAX``)."""
        return None if self.trials == AUTO else self.trials  # type: ignore[return-value]

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    def validate(self) -> None:
        """Refuse impossible values before anything is read or written."""
        from tuner.storage.location import hide_password  # the CLI reads this module; SQLAlchemy waits
        from tuner.storage.stores import spec_for_option

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
        if self.timeout is not None and self.timeout <= 0:
            raise UsageError(f"--timeout must be a positive number of seconds, got {self.timeout}")
        if self.trials != AUTO and (not isinstance(self.trials, int) or isinstance(self.trials, bool)):
            raise UsageError(f"--trials takes a whole number or auto, got {self.trials!r}")
        for name, low in (("trials", 1), ("epochs", 1), ("max_train", 2), ("keep", 1)):
            value = getattr(self, name)
            if value is not None and value != AUTO and value < low:
                raise UsageError(f"--{name.replace('_', '-')} must be at least {low}, got {value}")
        if self.artifacts is not None:
            spec_for_option(self.artifacts)
        if self.jobs != AUTO and (not isinstance(self.jobs, int) or isinstance(self.jobs, bool)):
            raise UsageError(f"--jobs takes a whole number or auto, got {self.jobs!r}")
        if self.jobs != AUTO and not 1 <= self.jobs <= MAX_JOBS:
            raise UsageError(f"--jobs must be between 1 and {MAX_JOBS}, got {self.jobs}")
        if self.fuse not in (None, AUTO) and (not isinstance(self.fuse, int) or isinstance(self.fuse, bool)):
            raise UsageError(f"--fuse takes a whole number or auto, got {self.fuse!r}")
        if isinstance(self.fuse, int) and not 1 <= self.fuse <= MAX_FUSE:
            raise UsageError(f"--fuse must be between 1 and {MAX_FUSE}, got {self.fuse}")
        if self.compile and self.fuse not in (None, 1):
            raise UsageError("--fuse and --compile: a fused cohort is not compiled; choose one of them")
        if self.ray is not None and self.fuse == AUTO:
            raise UsageError("--fuse auto with --ray: the probe would time this machine, not the nodes' devices; "
                             "give --fuse K (each actor trains K trials at once)")
        if not (math.isfinite(self.checkpoint_every) and self.checkpoint_every >= 0):
            raise UsageError(f"--checkpoint-every must be a number of seconds >= 0, got {self.checkpoint_every}")
        if self.pruner_startup < 0 or (self.pruner_warmup is not None and self.pruner_warmup < 0):
            raise UsageError("--pruner-startup and --pruner-warmup must be >= 0")
        self._validate_ray()
        for name, known in (("sampler", SAMPLERS), ("pruner", PRUNERS), ("prior", PRIORS)):
            if getattr(self, name) not in known:
                raise UsageError(f"--{name} {getattr(self, name)!r}: choose one of {', '.join(known)}")


    def _validate_ray(self) -> None:
        if not (math.isfinite(self.cpus_per_trial) and self.cpus_per_trial > 0):
            raise UsageError(f"--cpus-per-trial must be a number above 0, got {self.cpus_per_trial}")
        if self.gpus_per_trial is not None and not (math.isfinite(self.gpus_per_trial) and self.gpus_per_trial >= 0):
            raise UsageError(f"--gpus-per-trial must be a number >= 0, got {self.gpus_per_trial}")
        if self.ray is None:
            if self.gpus_per_trial is not None or self.cpus_per_trial != 1.0:
                raise UsageError("--cpus-per-trial and --gpus-per-trial are for --ray; without it, --jobs N "
                                 "runs N trials at once on this machine")
            return
        if not self.ray.strip() or any(c.isspace() for c in self.ray):
            raise UsageError(f"--ray {self.ray!r}: give auto, local, or the head's HOST:PORT")
        if self.device not in ("auto", "cpu", "cuda"):
            raise UsageError(f"--ray places each trial on a device itself; give --device auto, cpu or cuda, "
                             f"not {self.device}")

    @property
    def trial_gpus(self) -> float:
        """What each --ray trial asks for: --gpus-per-trial, else a whole GPU on --device cuda."""
        if self.gpus_per_trial is not None:
            return self.gpus_per_trial
        return 1.0 if self.device == "cuda" else 0.0


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
