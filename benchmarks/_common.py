"""What the benchmark scripts share: where real MNIST is, and the study options they take."""

from __future__ import annotations

import argparse
from pathlib import Path

#: Real MNIST beside the checkout (../shared/data/MNIST/raw/), as on the development machines.
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def study_parser(doc: str, *, plugin: str, trials: int, epochs: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plugin", default=plugin)
    parser.add_argument("--trials", type=int, default=trials)
    parser.add_argument("--epochs", type=int, default=epochs)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-train", type=int, default=None)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    return parser
