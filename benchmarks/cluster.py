"""Benchmark 12: `--ray` on a local two-node Ray cluster against `--jobs 2`, and the gRPC proxy's cost.

1. Trials per hour: the real command, `tuner optimize`, timed from start to exit with `--jobs 2`
   on this machine and with `--ray` on a Ray cluster of two nodes started here (`ray start
   --head` on 127.0.0.1 and `ray start --address`, one CPU each), the same trials (fixed batch
   size, random sampler, no pruning: every trial does the same work).
2. The storage proxy: a 2 s trial (10 epochs of 0.2 s of single-thread matrix products, as a
   1-CPU actor trains) with a tuner trial's bookkeeping — 10 parameters drawn by tuner's TPE
   (one read of the study per trial), 4 records, then per epoch a history row, a report and
   tuner's median pruner's question — timed against the SQLite storage directly, and through
   the gRPC proxy served from another process (as the ``--ray`` driver serves it) with Optuna's
   own client and with tuner's batching client (tuner.storage.proxy, what ``--ray`` actors use).
   The overhead is the extra time the trial's own thread waits in storage calls, as a share of
   the trial (whole-trial wall times are printed too; they move with the machine by more), with
   the round trips each client made a trial.

    python benchmarks/cluster.py                        # mlp-digits, 20 trials × 5 epochs
    python benchmarks/cluster.py --trials 40 --proxy-trials 10 --proxy-repeats 5
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna
from _common import study_parser

from tuner.runtime import free_port
from tuner.search import make_pruner, make_sampler

BIN = Path(sys.executable).parent
TUNER, RAY = str(BIN / "tuner"), str(BIN / "ray")


def start_cluster(env: dict[str, str]) -> str:
    port = free_port()
    subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True)
    subprocess.run([RAY, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port), "--num-cpus", "1",
                    "--include-dashboard", "false", "--disable-usage-stats"], env=env, check=True, capture_output=True)
    subprocess.run([RAY, "start", "--address", f"127.0.0.1:{port}", "--num-cpus", "1", "--disable-usage-stats"],
                   env=env, check=True, capture_output=True)
    return f"127.0.0.1:{port}"


def timed_study(extra: list[str], args, env: dict[str, str]) -> dict[str, float]:
    folder = Path(tempfile.mkdtemp())
    cmd = [TUNER, "optimize", "--plugin", args.plugin, "--trials", str(args.trials), "--epochs", str(args.epochs),
           "--sampler", "random", "--pruner", "none", "--space", "batch_size=64", "--seed", str(args.seed),
           "--db", str(folder / "s.db"), "--quiet", *extra]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, env=env, cwd=folder)
    wall = time.perf_counter() - started
    study = optuna.load_study(study_name=args.plugin, storage=f"sqlite:///{folder / 's.db'}")
    trials = study.get_trials(deepcopy=False)
    seconds = sum(sum(row["seconds"] for row in t.user_attrs["history"]) for t in trials)
    shutil.rmtree(folder)
    return {"wall": wall, "per_hour": args.trials / wall * 3600, "train_s": seconds / len(trials)}


EPOCHS, EPOCH_S = 10, 0.2  # a 2 s trial


def _compute_for(seconds: float) -> int:
    """How many 256×256 single-thread matrix products take ``seconds`` here (an epoch's training)."""
    import torch

    torch.set_num_threads(1)
    a = torch.randn(256, 256)
    started, n = time.perf_counter(), 0
    while time.perf_counter() - started < 0.5:
        a @ a
        n += 1
    return max(1, int(n * seconds / 0.5))


def bookkeeping(trial: optuna.Trial, products: int = 0) -> float:
    """A tuner trial's storage traffic, with ``products`` matrix products of training per epoch."""
    import torch

    a = torch.randn(256, 256)
    for name in ("lr", "weight_decay", "dropout", "plateau_factor", "plateau_threshold", "plateau_min_lr"):
        trial.suggest_float(name, 1e-5, 1e-1, log=True)
    for name, choices in (("batch_size", [32, 64, 128]), ("optimizer", ["sgd", "adam", "adamw"])):
        trial.suggest_categorical(name, choices)
    trial.suggest_int("plateau_patience", 0, 3)
    trial.suggest_int("plateau_cooldown", 0, 2)
    for key in ("process", "hparams", "recipe", "drawn"):
        trial.set_user_attr(key, {"k": key, "v": list(range(20))})
    history = []
    for epoch in range(EPOCHS):
        for _ in range(products):
            a @ a
        history.append({"epoch": epoch + 1, "train_loss": 0.5, "val_loss": 0.4, "val_accuracy": 0.9, "lr": 0.01,
                        "lr_next": 0.01, "seconds": 0.2})
        trial.set_user_attr("history", history)
        trial.report(0.9 + epoch / 1000, epoch)
        if epoch + 1 < EPOCHS:  # as tuner: no question after the last epoch
            trial.should_prune()
    return 0.9


def _serve(path: str, port: int, ready) -> None:  # type: ignore[no-untyped-def]
    """The driver's side: a SQLite storage served as ``--ray`` serves it (Optuna's proxy server,
    with tuner's batch method added; a plain GrpcStorageProxy client does not use it)."""
    from optuna.storages import RDBStorage, get_storage

    from tuner.storage import serve

    server = serve(get_storage(RDBStorage(f"sqlite:///{path}")), "127.0.0.1", port)
    ready.set()
    server.wait_for_termination()


class _Waited:
    """Wraps a storage: the seconds the trial's own thread spends in its calls (what the trial waits for)."""

    def __init__(self, base: optuna.storages.BaseStorage) -> None:
        self.base, self.seconds, self.calls, self.thread = base, 0.0, 0, threading.current_thread()

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        found = getattr(self.base, name)
        if name.startswith("_") or not callable(found):
            return found

        def timed(*args, **kwargs):  # type: ignore[no-untyped-def]
            started = time.perf_counter()
            try:
                return found(*args, **kwargs)
            finally:
                self.calls += 1
                if threading.current_thread() is self.thread:
                    self.seconds += time.perf_counter() - started
        return timed


def _per_trial(storage: optuna.storages.BaseStorage, n: int, products: int) -> tuple[float, float, float]:
    """Wall seconds per trial, seconds per trial its thread waited for the storage, and round
    trips per trial (each call is one, but a batching client's batch is one)."""
    waited = _Waited(storage)
    study = optuna.create_study(storage=waited, direction="maximize", sampler=make_sampler("tpe", 0),  # type: ignore[arg-type]
                                pruner=make_pruner("median", EPOCHS, 3, None))
    study.optimize(lambda t: bookkeeping(t, products), n_trials=3)  # warm-up: connections, imports
    trips = lambda: getattr(storage, "round_trips", waited.calls)  # noqa: E731
    started, waited.seconds, before = time.perf_counter(), 0.0, trips()
    study.optimize(lambda t: bookkeeping(t, products), n_trials=n)
    return (time.perf_counter() - started) / n, waited.seconds / n, (trips() - before) / n


def proxy_cost(n: int) -> dict[str, tuple[float, float, float]]:
    """:func:`_per_trial` with SQLite directly, through Optuna's proxy client, and through
    tuner's batching client (what ``--ray`` actors use); each proxy served from another process."""
    import multiprocessing as mp

    from optuna.storages import GrpcStorageProxy, RDBStorage, get_storage

    from tuner.storage import BatchingProxy

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    folder = Path(tempfile.mkdtemp())
    products = _compute_for(EPOCH_S)
    results = {"SQLite directly": _per_trial(get_storage(RDBStorage(f"sqlite:///{folder / 'a.db'}")), n, products)}
    ctx = mp.get_context("spawn")
    clients = {"gRPC proxy, Optuna's client": GrpcStorageProxy, "gRPC proxy, batched (--ray)": BatchingProxy}
    for name, client in clients.items():
        port, ready = free_port(), ctx.Event()
        server = ctx.Process(target=_serve, args=(str(folder / f"{len(results)}.db"), port, ready), daemon=True)
        server.start()
        ready.wait()
        proxy = client(host="127.0.0.1", port=port)
        proxy.wait_server_ready(timeout=30)
        results[name] = _per_trial(proxy, n, products)
        proxy.close()
        server.kill()
    shutil.rmtree(folder)
    return results


def _trials_per_hour(args, env: dict[str, str]) -> dict[str, dict[str, float]]:  # type: ignore[no-untyped-def]
    address = start_cluster(env)
    try:
        rows = {"--jobs 2": timed_study(["--jobs", "2"], args, env),
                "--ray (2 nodes, 1 CPU each)": timed_study(["--ray", address], args, env)}
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True)
    print(f"{'run':<30}{'wall s':>9}{'trials/hour':>13}{'vs --jobs 2':>13}{'train s/trial':>15}")
    base = rows["--jobs 2"]["per_hour"]
    for name, r in rows.items():
        print(f"{name:<30}{r['wall']:>9.1f}{r['per_hour']:>13,.0f}{r['per_hour'] / base:>12.2f}×{r['train_s']:>15.2f}")
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, plugin="mlp-digits", trials=20, epochs=5)
    parser.add_argument("--proxy-trials", type=int, default=10)
    parser.add_argument("--proxy-repeats", type=int, default=3)
    parser.add_argument("--proxy-only", action="store_true", help="only part 2")
    args = parser.parse_args(argv)
    home = tempfile.mkdtemp()  # Ray's own files (no stray token of another cluster)
    env = {**os.environ, "HOME": home, "RAY_USAGE_STATS_ENABLED": "0", "TUNER_OFFLINE": "1"}
    print(f"{args.plugin}: {args.trials} trials × {args.epochs} epochs, batch 64, no pruning, "
          f"{os.cpu_count()} CPU cores")
    rows = {} if args.proxy_only else _trials_per_hour(args, env)
    shutil.rmtree(home, ignore_errors=True)
    runs = [proxy_cost(args.proxy_trials) for _ in range(args.proxy_repeats)]  # alternated: drift hits both
    print(f"\na {EPOCHS * EPOCH_S:.0f} s trial with its bookkeeping ({args.proxy_trials} trials × {args.proxy_repeats} "
          f"repeats, TPE, median pruner, {EPOCHS} epochs); the proxy served from another process. Median "
          "of the repeats; 'waits' is the time the trial's own thread spent in storage calls:")
    print(f"  {'storage':<30}{'round trips':>12}{'wall s/trial':>13}{'waits ms/trial':>16}{'waits vs SQLite':>17}"
          f"{'share of 2 s':>14}")
    direct = statistics.median(r["SQLite directly"][1] for r in runs)
    for name in runs[0]:
        wall = statistics.median(r[name][0] for r in runs)
        waits = statistics.median(r[name][1] for r in runs)
        trips = statistics.median(r[name][2] for r in runs)
        print(f"  {name:<30}{trips if 'proxy' in name else 0:>12.1f}{wall:>13.3f}{1000 * waits:>16.1f}"
              f"{1000 * (waits - direct):>+16.1f} "
              f"{100 * (waits - direct) / (EPOCHS * EPOCH_S):>+12.2f}%")
    print(json.dumps({"rows": rows, "trial_s": runs}))
    return 0


if __name__ == "__main__":
    threading.excepthook = lambda a: None  # grpc's threads at exit
    raise SystemExit(main())
