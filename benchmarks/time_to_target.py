"""Benchmark 4: wall time until a study first reaches a validation accuracy target.

`tuner` (its engine, the median pruner, the reference trial first) against a plain Optuna
script written the way Optuna's own PyTorch example is: a torchvision-style dataset with
per-sample ToTensor/Normalize through a DataLoader, TPE, no pruning. The peer gets the head
start a careful user gives it: its first trial is the seed's own settings (enqueued), as
tuner's trial 0 is; the peer without it ("own draw") is a labelled second line. Same model,
validation split, trial budget, epochs per trial and sampler seed; run one after the other in
one process. Time to target is taken at the completion of the trial that reached it and at
the end of the epoch that first reached it, for each side.

    python benchmarks/time_to_target.py                                  # lenet-digits, 98%
    python benchmarks/time_to_target.py --plugin mlp-mnist --target 0.975 --trials 20 --epochs 5
    python benchmarks/time_to_target.py --repeats 3                      # seeds 0, 1, 2: the spread

torch._dynamo (which torch's optimizers import on their first step) and the data set's first
decoding are paid before any clock starts, so that neither side's time depends on running first.
With --max-train both sides cap the validation part to the same proportion (tuner's rule).
tuner's side starts as the `tuner optimize` command does: the collector paused while the study is
prepared, and what exists then frozen (tuner/heap.py); the plain script runs as written.
"""

from __future__ import annotations

import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

import optuna
import torch
import torch.nn.functional as F
from _common import study_parser
from PIL import Image
from torch.utils.data import DataLoader
from torchvision import transforms

from tuner.contract import Hyperparameters
from tuner.data import DEFAULT_VAL_FRACTION, load_splits, model_shape, validation_cap
from tuner.execution import run_study
from tuner.plugins import load_pair
from tuner.plugins.registry import registry
from tuner.runtime import collector_paused
from tuner.study import OptimizeOptions, prepare_study


class ImageList(torch.utils.data.Dataset):
    """What torchvision's MNIST does per sample: a PIL image through the transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform) -> None:
        self.images = images[:, 0].numpy() if images.dtype == torch.uint8 else (images[:, 0] * 255).byte().numpy()
        self.labels = labels.tolist()
        self.transform = transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        return self.transform(Image.fromarray(self.images[i], mode="L")), self.labels[i]


class Clock:
    """When the target is first reached: at a trial's completion (an Optuna callback) and at the
    end of the epoch that first reached it (``epoch``, called by both sides' training loops)."""

    def __init__(self, target: float) -> None:
        self.target, self.start, self.reached, self.reached_epoch = target, time.perf_counter(), None, None

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if self.reached is None and trial.value is not None and trial.value >= self.target:
            self.reached = time.perf_counter() - self.start

    def epoch(self, accuracy: float) -> None:
        if self.reached_epoch is None and accuracy >= self.target:
            self.reached_epoch = time.perf_counter() - self.start

    # tuner's objective reports through a listener (tuner.trial.events.Listener)
    def trial_started(self, number, hp, reference) -> None:
        pass

    def epoch_done(self, number, epoch, epochs, result) -> None:
        self.epoch(result.val_accuracy)


def plain_optuna(args, clock: Clock, reference_first: bool = True) -> optuna.Study:
    """``reference_first``: the careful user's script, whose first trial is the seed's own
    settings (as far as its space goes: lr, optimizer, batch size), as tuner's trial 0 is."""
    arch_name, dataset_name = registry().split_pair(args.plugin)
    arch, dataset = registry().architecture(arch_name), registry().dataset(dataset_name)
    splits = load_splits(dataset_name, dataset, args.data_dir)
    # The same validation split as tuner's (seeded permutation, 10%).
    n = len(splits.train_labels)
    order = torch.randperm(n, generator=torch.Generator().manual_seed(args.seed))
    val_idx, train_idx = order[: round(n * 0.1)], order[round(n * 0.1):]
    if args.max_train:  # and the validation part capped to the same proportion, as tuner's is
        train_idx = train_idx[: args.max_train]
        val_idx = val_idx[: validation_cap(args.max_train, DEFAULT_VAL_FRACTION)]
    transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(dataset.mean, dataset.std)])
    train_set = ImageList(splits.train_images[train_idx], splits.train_labels[train_idx], transform)
    val_set = ImageList(splits.train_images[val_idx], splits.train_labels[val_idx], transform)
    shape = model_shape(arch, dataset)

    def objective(trial: optuna.Trial) -> float:
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        optimizer_name = trial.suggest_categorical("optimizer", ["SGD", "Adam", "AdamW"])
        batch_size = trial.suggest_categorical("batch_size", [32, 64, 128, 256, 512])
        model = arch.build(shape, Hyperparameters(lr=lr, batch_size=batch_size))
        kwargs = {"momentum": 0.9} if optimizer_name == "SGD" else {}
        optimizer = getattr(torch.optim, optimizer_name)(model.parameters(), lr=lr, **kwargs)
        train_loader = DataLoader(train_set, batch_size=batch_size, shuffle=True)
        val_loader = DataLoader(val_set, batch_size=batch_size)
        for epoch in range(args.epochs):
            model.train()
            for x, y in train_loader:
                optimizer.zero_grad()
                F.cross_entropy(model(x), y).backward()
                optimizer.step()
            model.eval()
            correct = 0
            with torch.no_grad():
                for x, y in val_loader:
                    correct += (model(x).argmax(1) == y).sum().item()
            accuracy = correct / len(val_set)
            clock.epoch(accuracy)
            trial.report(accuracy, epoch)
        return accuracy

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=args.seed))
    reference = arch.reference
    if reference_first and reference is not None:
        study.enqueue_trial({"lr": reference.lr, "batch_size": reference.batch_size,
                             "optimizer": {"sgd": "SGD", "adam": "Adam", "adamw": "AdamW"}[reference.optimizer]})
    study.optimize(objective, n_trials=args.trials, callbacks=[clock])
    return study


def tuner_study(args, clock: Clock) -> optuna.Study:
    options = OptimizeOptions(plugin=args.plugin, db=str(Path(tempfile.mkdtemp()) / "s.db"), trials=args.trials,
                              epochs=args.epochs, seed=args.seed, device="cpu", max_train=args.max_train,
                              data_dir=str(args.data_dir))
    with collector_paused():  # as `tuner optimize` starts (tuner/cli.py)
        prepared = prepare_study(options, listener=clock)
    run_study(prepared, args.trials, None, callbacks=[clock])
    return prepared.study


PEERS = ("plain optuna", "plain, own draw")
WHEN = ((0, "at trial completion"), (1, "at the epoch that reached it"))
BOUND_SAID = {"": "tuner is faster by", ">=": "only tuner reached it, faster by at least",
              "<=": "only the peer reached it, tuner faster by at most"}


def one_run(args) -> dict[str, tuple]:
    """The three contenders, one after the other; prints the run's table and ratios."""
    print(f"{args.plugin}: target {args.target:.1%} validation accuracy, {args.trials} trials × "
          f"{args.epochs} epochs, seed {args.seed}, CPU ({torch.get_num_threads()} threads)")
    rows = {}
    contenders = (("tuner", tuner_study), ("plain optuna", plain_optuna),
                  ("plain, own draw", lambda a, c: plain_optuna(a, c, reference_first=False)))
    for name, fn in contenders:
        clock = Clock(args.target)
        study = fn(args, clock)
        rows[name] = (clock.reached, clock.reached_epoch, time.perf_counter() - clock.start, study.best_value)
    print(f"{'':<17}{'to target s':>12}{'  (epoch s)':>12}{'total s':>10}{'best val':>10}")
    for name, (reached, at_epoch, total, best) in rows.items():
        shown = f"{reached:.1f}" if reached is not None else "never"
        epoch_shown = f"{at_epoch:.1f}" if at_epoch is not None else "never"
        print(f"{name:<17}{shown:>12}{epoch_shown:>12}{total:>10.1f}{100 * best:>9.2f}%")
    print("plain optuna: its first trial is the seed's settings, as tuner's is; plain, own draw: TPE's first draw")
    ratios = {}
    for peer in PEERS:
        for index, what in WHEN:
            t, p = rows["tuner"][index], rows[peer][index]
            if t is not None and p is not None:
                ratios[peer, what] = (p / t, "")
            elif t is not None:
                ratios[peer, what] = (rows[peer][2] / t, ">=")  # the peer's whole run: a lower bound
            elif p is not None:
                ratios[peer, what] = (p / rows["tuner"][2], "<=")  # tuner's whole run: an upper bound
            else:
                print(f"time to target {what}, vs {peer}: neither reached it")
                continue
            value, mark = ratios[peer, what]
            print(f"time to target {what}, vs {peer}: {BOUND_SAID[mark]} {value:.2f}x")
    return ratios



def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, plugin="lenet-digits", trials=30, epochs=10)
    parser.add_argument("--target", type=float, default=0.98)
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs with seeds --seed, --seed+1, ...; the spread of each ratio is printed")
    args = parser.parse_args(argv)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    # What a process pays once, paid before any clock starts, so that no side's figure depends
    # on running first: torch._dynamo, which torch's optimizers import on their first step
    # (1.1 s on a 2-core machine; torchvision's import brings it in already, this makes it
    # explicit), and the data set's first decoding (kept in tuner's cache after it).
    importlib.import_module("torch._dynamo")
    pair = load_pair(args.plugin)  # and the same disk cache as tuner's own load
    load_splits(pair.dataset_name, pair.dataset, args.data_dir, pair.dataset_dist)
    all_ratios: dict[tuple[str, str], list[tuple[float, str]]] = {}
    first_seed = args.seed
    for r in range(args.repeats):
        args.seed = first_seed + r
        if r:
            print()
        for key, ratio in one_run(args).items():
            all_ratios.setdefault(key, []).append(ratio)
    if args.repeats > 1:
        print(f"\nover {args.repeats} runs (seeds {first_seed}-{first_seed + args.repeats - 1}): median (min-max) of "
              "each ratio; where only one side reached the target, its bound (>= or <=) counts as the value")
        if not all_ratios:
            print("  neither side reached the target in any run")
        for (peer, what), values in all_ratios.items():
            numbers = sorted(v for v, _ in values)
            bounds = [f"{mark}{v:.2f}x" for v, mark in values if mark]
            print(f"  vs {peer}, {what}: {statistics.median(numbers):.2f}x ({numbers[0]:.2f}-{numbers[-1]:.2f}, "
                  f"{len(values)} runs{'; bounds: ' + ', '.join(bounds) if bounds else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
