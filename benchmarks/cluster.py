"""Benchmark 12: `--ray` on a local two-node Ray cluster against `--jobs 2`, and the gRPC proxy's cost.

1. Trials per hour: the real command, `tuner optimize`, timed from start to exit with `--jobs 2`
   on this machine and with `--ray` on a Ray cluster of two nodes started here (`ray start
   --head` on 127.0.0.1 and `ray start --address`, one CPU each), the same trials (fixed batch
   size, random sampler, no pruning: every trial does the same work).
2. The storage proxy: what one trial's bookkeeping costs through Optuna's gRPC proxy against
   the SQLite storage directly, per trial and as a share of a 2 s trial. The bookkeeping is a
   tuner trial's: 10 parameters drawn by tuner's TPE (one read of the study per trial), 4
   records, then per epoch a history row, a report and tuner's median pruner's question, 10
   epochs.

    python benchmarks/cluster.py                        # mlp-digits, 20 trials × 5 epochs
    python benchmarks/cluster.py --trials 40 --proxy-trials 200
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import optuna
from _common import study_parser

from tuner.study.samplers import make_pruner, make_sampler

BIN = Path(sys.executable).parent
TUNER, RAY = str(BIN / "tuner"), str(BIN / "ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_cluster(env: dict[str, str]) -> str:
    port = _free_port()
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


def bookkeeping(trial: optuna.Trial) -> float:
    """A tuner trial's storage traffic without its training."""
    for name in ("lr", "weight_decay", "dropout", "plateau_factor", "plateau_threshold", "plateau_min_lr"):
        trial.suggest_float(name, 1e-5, 1e-1, log=True)
    for name, choices in (("batch_size", [32, 64, 128]), ("optimizer", ["sgd", "adam", "adamw"])):
        trial.suggest_categorical(name, choices)
    trial.suggest_int("plateau_patience", 0, 3)
    trial.suggest_int("plateau_cooldown", 0, 2)
    for key in ("process", "hparams", "recipe", "drawn"):
        trial.set_user_attr(key, {"k": key, "v": list(range(20))})
    history = []
    for epoch in range(10):
        history.append({"epoch": epoch + 1, "train_loss": 0.5, "val_loss": 0.4, "val_accuracy": 0.9, "lr": 0.01,
                        "lr_next": 0.01, "seconds": 0.2})
        trial.set_user_attr("history", history)
        trial.report(0.9 + epoch / 1000, epoch)
        trial.should_prune()
    return 0.9


def proxy_cost(n: int) -> tuple[float, float]:
    """Seconds per trial of :func:`bookkeeping`: SQLite directly, then through the gRPC proxy."""
    from optuna.storages import GrpcStorageProxy, RDBStorage, get_storage
    from optuna.storages._grpc.server import make_server

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    folder = Path(tempfile.mkdtemp())
    results = []
    for through_proxy in (False, True):
        # Cached, as a study's own storage is (and so the --ray driver's, which the proxy serves).
        storage = get_storage(RDBStorage(f"sqlite:///{folder / f'{through_proxy}.db'}"))
        server = None
        if through_proxy:
            port = _free_port()
            server = make_server(storage, "127.0.0.1", port)
            server.start()
            storage = GrpcStorageProxy(host="127.0.0.1", port=port)
            storage.wait_server_ready(timeout=30)
        study = optuna.create_study(storage=storage, direction="maximize", sampler=make_sampler("tpe", 0),
                                    pruner=make_pruner("median", 10, 3, None))
        study.optimize(bookkeeping, n_trials=5)  # warm-up: connections, imports
        started = time.perf_counter()
        study.optimize(bookkeeping, n_trials=n)
        results.append((time.perf_counter() - started) / n)
        if server is not None:
            storage.close()
            server.stop(grace=None)
    shutil.rmtree(folder)
    return results[0], results[1]


def main(argv: list[str] | None = None) -> int:
    parser = study_parser(__doc__, plugin="mlp-digits", trials=20, epochs=5)
    parser.add_argument("--proxy-trials", type=int, default=100)
    args = parser.parse_args(argv)
    home = tempfile.mkdtemp()  # Ray's own files (no stray token of another cluster)
    env = {**os.environ, "HOME": home, "RAY_USAGE_STATS_ENABLED": "0", "TUNER_OFFLINE": "1"}
    print(f"{args.plugin}: {args.trials} trials × {args.epochs} epochs, batch 64, no pruning, "
          f"{os.cpu_count()} CPU cores")
    address = start_cluster(env)
    try:
        rows = {"--jobs 2": timed_study(["--jobs", "2"], args, env),
                "--ray (2 nodes, 1 CPU each)": timed_study(["--ray", address], args, env)}
    finally:
        subprocess.run([RAY, "stop", "--force"], env=env, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
    print(f"{'run':<30}{'wall s':>9}{'trials/hour':>13}{'vs --jobs 2':>13}{'train s/trial':>15}")
    base = rows["--jobs 2"]["per_hour"]
    for name, r in rows.items():
        print(f"{name:<30}{r['wall']:>9.1f}{r['per_hour']:>13,.0f}{r['per_hour'] / base:>12.2f}×{r['train_s']:>15.2f}")
    direct, proxied = proxy_cost(args.proxy_trials)
    extra = proxied - direct
    print(f"\none trial's bookkeeping ({args.proxy_trials} trials, TPE, 10 epochs): SQLite {1000 * direct:.1f} ms, "
          f"through the gRPC proxy {1000 * proxied:.1f} ms: +{1000 * extra:.1f} ms a trial, "
          f"{100 * extra / 2:.2f}% of a 2 s trial")
    print(json.dumps({"rows": rows, "proxy_ms": [1000 * direct, 1000 * proxied]}))
    return 0


if __name__ == "__main__":
    threading.excepthook = lambda a: None  # grpc's threads at exit
    raise SystemExit(main())
