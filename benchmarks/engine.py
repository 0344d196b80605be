"""Benchmark 1: tuner's training loop against the seed posts' pipeline and a bare pre-loaded loop.

Same model, same data, same batch size, same number of steps, measured side by side in one
run, interleaved (seed, bare, tuner, seed, bare, tuner, ...), best of --repeats:

- seed:  torchvision's MNIST dataset with per-sample ToTensor/Normalize (and Resize for
         AlexNet) through a DataLoader, `.item()` every step — the loop of seeds 000–004.
- bare:  a hand-written loop over pre-loaded normalised tensors, index-slice batches, no sync.
- tuner: tuner.training.loop.Trainer.train_epoch on tuner's prepared data.

    python benchmarks/engine.py                          # mlp-mnist and lenet-mnist on CPU
    python benchmarks/engine.py --pairs alexnet-mnist --device cuda --steps 50
    python benchmarks/engine.py --quick --check          # CI: fail if tuner < bare beyond noise

Prints images/s and the ratios tuner/seed and tuner/bare.
"""

from __future__ import annotations

import argparse
import gzip
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from _common import DEFAULT_DATA

from tuner.contract import Hyperparameters
from tuner.data import load_splits, model_shape, prepare
from tuner.plugins.registry import registry
from tuner.training import Trainer


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seed_pipeline(pair: str, data_dir: Path, steps: int, batch: int, device: torch.device, model, hp) -> float:
    """The seeds' loop: torchvision MNIST + per-sample transforms + DataLoader + .item()."""
    from torchvision import datasets, transforms

    arch = registry().architecture(pair.rsplit("-", 1)[0])
    mnist = registry().dataset("mnist")
    root = Path(tempfile.mkdtemp())
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):  # torchvision reads the extracted files
        with gzip.open(data_dir / "MNIST" / "raw" / f"{name}.gz") as src, (raw / name).open("wb") as dst:
            shutil.copyfileobj(src, dst)
    steps_list = [transforms.ToTensor(), transforms.Normalize(mnist.mean, mnist.std)]
    if arch.input_size:
        steps_list.insert(0, transforms.Resize(arch.input_size, antialias=True))
    ds = datasets.MNIST(str(root), train=True, download=False, transform=transforms.Compose(steps_list))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True)
    opt = torch.optim.SGD(model.parameters(), lr=hp.lr, momentum=hp.momentum)
    model.train()
    done, started = 0, None
    for i, (x, y) in enumerate(loader):
        if i == 2:  # warm-up steps excluded
            sync(device)
            started = time.perf_counter()
        x, y = x.to(device), y.to(device)
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()
        loss.item()  # the seeds print/accumulate the loss every step
        if started is not None:
            done += len(y)
        if i >= steps + 1:
            break
    sync(device)
    shutil.rmtree(root)
    return done / (time.perf_counter() - started)


def bare_loop(data, steps: int, batch: int, device: torch.device, model, hp) -> float:
    """The best a hand-written script does: pre-loaded tensors, index slices, no per-step sync."""
    opt = torch.optim.SGD(model.parameters(), lr=hp.lr, momentum=hp.momentum)
    model.train()
    x_all, y_all = data.train_x, data.train_y
    order = torch.randperm(len(y_all), device=device)
    for i in range(steps + 2):
        if i == 2:
            sync(device)
            started = time.perf_counter()
        idx = order[(i * batch) % (len(y_all) - batch):][:batch]
        x = data.fit(x_all[idx])
        loss = F.cross_entropy(model(x), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    sync(device)
    return steps * batch / (time.perf_counter() - started)


def tuner_loop(data, steps: int, batch: int, device: torch.device, model, hp) -> float:
    """tuner's engine: one train_epoch over exactly `steps` batches (after 2 warm-up steps)."""
    warm = Trainer(model, hp, _sliced(data, 2 * batch), amp=None)
    warm.train_epoch().item()
    trainer = Trainer(model, hp, _sliced(data, steps * batch), amp=None)
    sync(device)
    started = time.perf_counter()
    trainer.train_epoch().item()  # one host sync, at the end of the epoch
    sync(device)
    return steps * batch / (time.perf_counter() - started)


def _sliced(data, n: int):
    return replace(data, train_x=data.train_x[:n], train_y=data.train_y[:n])


def run_pair(pair: str, args) -> dict[str, float]:
    arch_name, dataset_name = registry().split_pair(pair)
    arch, dataset = registry().architecture(arch_name), registry().dataset(dataset_name)
    device = torch.device(args.device)
    splits = load_splits(dataset_name, dataset, args.data_dir)
    need = (args.steps + 4) * args.batch
    data = prepare(splits, dataset, arch, device=device, max_train=need)
    if len(data.train_y) < need:  # a small dataset (digits): repeat it to fill the steps
        reps = -(-need // len(data.train_y))
        data = replace(data, train_x=data.train_x.repeat(reps, 1, 1, 1)[:need],
                       train_y=data.train_y.repeat(reps)[:need])
    # Same optimiser for all three: the seeds' SGD, momentum 0.9 (no scheduler inside an epoch).
    hp = Hyperparameters(lr=0.01, batch_size=args.batch, optimizer="sgd", momentum=0.9, scheduler="none")
    shape = model_shape(arch, dataset)
    best = {"seed": 0.0, "bare": 0.0, "tuner": 0.0}
    paired: list[float] = []  # tuner / bare within each repeat (measured one after the other)
    for _ in range(args.repeats):
        rates: dict[str, float] = {}
        for name in (() if args.quick else ("seed",)) + ("bare", "tuner"):
            torch.manual_seed(0)
            model = arch.build(shape, hp).to(device)
            if name == "seed":
                rate = seed_pipeline(pair, args.data_dir, args.steps, args.batch, device, model, hp)
            elif name == "bare":
                rate = bare_loop(data, args.steps, args.batch, device, model, hp)
            else:
                rate = tuner_loop(data, args.steps, args.batch, device, model, hp)
            best[name] = max(best[name], rate)
            rates[name] = rate
        paired.append(rates["tuner"] / rates["bare"])
    return {**best, "paired": statistics.median(paired)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", nargs="+", default=["mlp-mnist", "lenet-mnist"])
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--quick", action="store_true", help="bare vs tuner only, on digits")
    parser.add_argument("--check", action="store_true", help="exit 1 if tuner is slower than bare beyond noise")
    parser.add_argument("--noise", type=float, default=0.15, help="allowed shortfall for --check (fraction)")
    args = parser.parse_args(argv)
    if args.quick:
        args.pairs = [p.rsplit("-", 1)[0] + "-digits" for p in args.pairs]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {args.device}, "
          f"batch {args.batch}, {args.steps} steps, best of {args.repeats}")
    print(f"{'pair':<16}{'seed img/s':>12}{'bare img/s':>12}{'tuner img/s':>13}{'tuner/seed':>12}{'tuner/bare':>12}")
    failed = False
    for pair in args.pairs:
        r = run_pair(pair, args)
        vs_seed = f"{r['tuner'] / r['seed']:.2f}×" if r["seed"] else "—"
        vs_bare = r["tuner"] / r["bare"]
        print(f"{pair:<16}{r['seed']:>12,.0f}{r['bare']:>12,.0f}{r['tuner']:>13,.0f}{vs_seed:>12}{vs_bare:>11.2f}×")
        # --check: the median of each repeat's own ratio, not the ratio of two bests, which one
        # lucky repeat of either loop on a shared machine can move by a quarter (CI saw 0.75x once).
        failed |= r["paired"] < 1 - args.noise
        if args.check:
            print(f"{'':<16}median of each repeat's tuner/bare: {r['paired']:.2f}×")
    if args.check and failed:
        print(f"FAIL: tuner's loop is more than {args.noise:.0%} slower than the bare loop (median paired ratio)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
