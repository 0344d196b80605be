"""What tuner stores on a study and its trials: every attribute key, a typed reading of a trial,
and the study-level records read back (best, reference, counts, runs, test accuracy).

Every key is written here once; modules that read a study import this one, not the modules that
train (and torch with them).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tuner.errors import StudyError

if TYPE_CHECKING:  # read by the CLI before any study is opened: Optuna is imported when one is
    import optuna
    from optuna.trial import FrozenTrial

# -- trial user attributes ---------------------------------------------------------------------
REFERENCE = "reference"  # the enqueued reference (hand-picked settings)
HPARAMS = "hparams"  # the trial's full Hyperparameters.as_dict()
HISTORY = "history"  # one row per epoch: epoch, train_loss, val_loss, val_accuracy, lr, seconds
RECIPE = "recipe"  # what re-training it needs (tuner.after.rebuild reads it)
PROCESS = "process"  # {"host", "pid", "started"} of the process running it (tuner.runtime.liveness)
FAIL_REASON = "fail_reason"  # why it failed; a FAIL without one was killed
PRUNE_REASON = "prune_reason"  # why the pruner stopped it
WEIGHTS = "weights"  # {"artifact_id", "sha256", "bytes", "file"}, or a path (before the store)
CHECKPOINT = "checkpoint"  # {"artifact_id", "epoch", "sha256", "slot"}: the running trial's last saved state
RETRY_OF = "retry_of"  # the number of the interrupted or killed trial this one goes on from
COHORT = "cohort"  # the numbers of the trials trained with it as one fused model (--fuse)
# How the sampler drew it (tuner.search.prior): LR_STEP (the reference with only its learning rate
# moved), PRIOR (around the reference) or AROUND_BEST (around the best trial so far); absent when
# the wrapped sampler drew it.
DRAWN = "drawn"
LR_STEP = "lr"
PRIOR = "prior"
AROUND_BEST = "best"
#: How each way a trial came to be is said, ``"reference"`` and ``"sampler"`` (no DRAWN) included.
DRAWN_SAID = {"reference": "the reference", LR_STEP: "the reference with its learning rate moved",
              PRIOR: "a trial drawn around the reference", AROUND_BEST: "a trial drawn around the best so far",
              "sampler": "a trial the sampler drew"}
# {"device", "batch_size"}: one image ran out of memory (tuner.training.loop.DoesNotFit) on that
# kind of device (tuner.training.device.device_kind); later trials there draw smaller batches.
DOES_NOT_FIT = "does_not_fit"
SPLIT = "split"  # K: out of memory, its steps ran as K micro-batches adding up to its batch size
ZERO_SWITCH = "_is_zero"  # param-name suffix: "0 or a log range" is sampled as this switch + the range
INTERRUPTED = "interrupted"  # FAIL_REASON of a trial stopped by Ctrl-C, SIGTERM or SIGHUP
# FAIL_REASON of a trial stopped at an epoch's end because its next epoch would end after --timeout
TIMED_OUT = "stopped at --timeout: its next epoch would have ended after it"

# -- study user attributes ---------------------------------------------------------------------
PROVENANCE = "provenance"  # plugins and versions, settings, seed, split sizes, the space: at creation
STORE = "artifacts"  # where the artifact store is (tuner.storage.stores)
KEEP = "keep"  # how many of the best trials keep their weights (--keep)
TEST_ACCURACY = "test_accuracy"  # {trial number: test accuracy}, measured once per best
PAIRED = "paired"  # examples only the best or only the reference gets right (paired SE)
STOPPED = "stopped"  # {"reason", "after_trial", "at"}: why --trials auto ended the study
IMPORTANCE = "importance"  # importance computed when a run ended (tuner.after.importance)
# Each `tuner optimize` on a study records how it ran, under a key of its own ("run:" + start
# time + process id): two terminals resuming one study at once both keep theirs, which one
# list read, extended and written back would not.
RUN_PREFIX = "run:"

KILLED = "its process stopped without a word (killed, or the machine went down)"


@dataclass(frozen=True)
class TrialView:
    """A trial as tuner recorded it, typed: what the summary, the console, tracking and
    ``reproduce`` read, instead of each its own ``user_attrs.get``."""

    number: int
    state: str
    value: float | None
    hparams: dict[str, Any]
    history: list[dict[str, float]]
    duration_s: float | None
    reason: str | None  # why it was pruned or failed (KILLED for a FAIL with none)
    reference: bool
    started: datetime.datetime | None = None
    completed: datetime.datetime | None = None
    drawn: str | None = None  # DRAWN: "lr", "prior", "best", or None (the sampler, or queued)
    device: str | None = None  # where it trained (its recipe's), e.g. "cuda:1" for a --jobs worker
    node: str | None = None  # the Ray node's address, for a --ray trial
    cohort: list[int] | None = None  # COHORT: the trials it trained with as one fused model (--fuse)

    @property
    def epochs_run(self) -> int:
        return len(self.history)

    @property
    def where(self) -> str:
        """The node and device it trained on, as the live view says it ("" for this machine's CPU)."""
        return place(self.node, self.device)


def place(node: str | None, device: str | None) -> str:
    """``"10.0.0.7 cuda:1"``: a Ray node's address and a device; a lone ``"cpu"`` is left out."""
    shown = device if node or (device or "cpu") != "cpu" else None
    return " ".join(p for p in (node, shown) if p)


def node_of(process: Any) -> str | None:
    """The Ray node's address in a --ray trial's process record (tuner.execution.actors)."""
    node = process.get("node") if isinstance(process, dict) else None
    return node.get("ip") if isinstance(node, dict) else None


def view(trial: FrozenTrial) -> TrialView:
    attrs = trial.user_attrs
    reason = attrs.get(PRUNE_REASON) if trial.state.name == "PRUNED" else None
    if trial.state.name == "FAIL":
        reason = attrs.get(FAIL_REASON) or trial.system_attrs.get(FAIL_REASON) or KILLED
    return TrialView(
        number=trial.number,
        state=trial.state.name,
        value=trial.value if trial.state.name == "COMPLETE" else None,
        hparams=dict(attrs.get(HPARAMS, trial.params)),
        history=list(attrs.get(HISTORY, [])),
        duration_s=trial.duration.total_seconds() if trial.duration else None,
        reason=reason,
        reference=bool(attrs.get(REFERENCE)),
        started=trial.datetime_start,
        completed=trial.datetime_complete,
        drawn=attrs.get(DRAWN),
        cohort=attrs.get(COHORT),
        device=(attrs.get(RECIPE) or {}).get("device"),
        node=node_of(attrs.get(PROCESS)),
    )


def fit_limit(trials: Iterable[FrozenTrial], device: str) -> tuple[int, int] | None:
    """The smallest batch size that did not fit on ``device`` (a device kind), and the trial that
    found it; None when nothing ran out of memory there."""
    found = [(t.user_attrs[DOES_NOT_FIT]["batch_size"], t.number) for t in trials
             if isinstance(t.user_attrs.get(DOES_NOT_FIT), dict) and t.user_attrs[DOES_NOT_FIT].get("device") == device]
    return min(found) if found else None


def is_tuner_trial(trial: FrozenTrial) -> bool:
    """Whether tuner's marks are on the trial (studies of early versions have no provenance)."""
    return REFERENCE in trial.user_attrs or HPARAMS in trial.user_attrs


def rank(value: float, number: int) -> tuple[float, int]:
    """Sort key, best first: higher value, then the earlier trial."""
    return -value, number


def best_first(trials: Iterable[FrozenTrial]) -> list[FrozenTrial]:
    """The completed trials among ``trials``, best first."""
    done = [t for t in trials if t.state.name == "COMPLETE"]
    return sorted(done, key=lambda t: rank(t.value, t.number))


def references(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get(REFERENCE)]


def reference_among(trials: Sequence[FrozenTrial]) -> FrozenTrial | None:
    """The reference trial among ``trials``; the completed one when an interrupted reference was
    run again."""
    found = [t for t in trials if t.user_attrs.get(REFERENCE)]
    done = [t for t in found if t.state.name == "COMPLETE"]
    return (done or found or [None])[0]


def reference_trial(study: optuna.Study) -> FrozenTrial | None:
    """The study's reference trial (:func:`reference_among`)."""
    return reference_among(study.get_trials(deepcopy=False))


def best_trial(study: optuna.Study) -> FrozenTrial:
    ranked = best_first(study.get_trials(deepcopy=False))
    if not ranked:
        raise StudyError(
            f"study {study.study_name!r} has no completed trial yet; run `tuner optimize` on it"
        )
    return ranked[0]


def provenance(study: optuna.Study) -> dict[str, Any]:
    return dict(study.user_attrs.get(PROVENANCE, {}))


def test_accuracies(study: optuna.Study) -> dict[int, float]:
    return {int(k): v for k, v in study.user_attrs.get(TEST_ACCURACY, {}).items()}


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def record_run(study: optuna.Study, entry: dict[str, Any]) -> None:
    started = datetime.datetime.now(datetime.UTC)
    study.set_user_attr(f"{RUN_PREFIX}{started.isoformat(timespec='microseconds')}:{os.getpid()}",
                        {"started": started.isoformat(timespec="seconds"), **entry})


def runs(study: optuna.Study) -> list[dict[str, Any]]:
    """Every recorded run of ``tuner optimize`` on the study, oldest first."""
    attrs = study.user_attrs
    return [attrs[k] for k in sorted(k for k in attrs if k.startswith(RUN_PREFIX))]


#: ``--state`` names, as a person types them, and the trial states they mean.
STATE_NAMES = {"complete": "COMPLETE", "completed": "COMPLETE", "pruned": "PRUNED", "fail": "FAIL",
               "failed": "FAIL", "running": "RUNNING"}
#: ``--sort`` orders.
SORTS = ("number", "value", "duration")


def state_counts(study: optuna.Study) -> dict[str, int]:
    counts = {s: 0 for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name] = counts.get(t.state.name, 0) + 1
    return counts


def select_trials(study: optuna.Study, states: set[str] | frozenset[str] = frozenset(), sort: str = "number",
                  limit: int | None = None) -> list[TrialView]:
    """The trials in ``states`` (all when empty), ordered by ``number``, ``value`` (best first) or
    ``duration`` (longest first), at most ``limit``."""
    views = [view(t) for t in study.get_trials(deepcopy=False)]
    if states:
        views = [v for v in views if v.state in states]
    if sort == "value":
        views.sort(key=lambda v: (v.value is None, *rank(v.value or 0, v.number)))
    elif sort == "duration":
        views.sort(key=lambda v: -(v.duration_s or 0))
    return views[:limit]
