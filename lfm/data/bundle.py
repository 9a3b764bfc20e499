"""Prepared splits in one file, for training where the mirror and the model wheels are not installed.

A GPU machine often has PyTorch but neither the data mirror nor ``mujoco``; the splits that a run needs are a few
tens of MB of arrays. :func:`save_splits` writes ``{set: Split}`` (see :mod:`lfm.data.benchmark`) as one
xz-compressed pickle with a header (format version, lfm version, the sets, their frame counts); :func:`load_splits`
reads it back and checks the header. Only load files you made yourself: a pickle can run code when it is read.

    python -m lfm.data.bundle out.pkl.xz --sets all cheetah --train-stride 1   # on the machine with the data
    lfm train -f params/train_open_v2.yaml -o runs/v2 --splits out.pkl.xz       # on the other one
    (``--test-sets``: keep the test part of these sets only, e.g. the eval sets of an ablation run)
"""

from __future__ import annotations

import argparse
import dataclasses
import lzma
import pickle
from pathlib import Path

import numpy as np

__all__ = ["save_splits", "load_splits", "FORMAT"]

FORMAT = "lfm-splits-1"


def save_splits(path, splits: dict, *, test_sets=None) -> Path:
    """Write ``splits`` (``{set: Split}``) to ``path`` atomically; returns the path. ``test_sets``: keep the test
    part of these sets only (the others get an empty test part: a file for training, a third smaller)."""
    from .. import __version__
    from ..results import atomic_write_bytes

    if test_sets is not None:
        unknown = sorted(set(test_sets) - set(splits))
        if unknown:
            raise ValueError(f"test_sets {unknown} are not among the sets written ({sorted(splits)}); add them to "
                             "--sets as well.")
        splits = {k: sp if k in test_sets else dataclasses.replace(sp, test=sp.test.subset(np.arange(0)))
                  for k, sp in splits.items()}
    header = {"format": FORMAT, "lfm": __version__, "sets": sorted(splits),
              "frames": {k: sp.counts() for k, sp in splits.items()}}
    data = lzma.compress(pickle.dumps({"header": header, "splits": splits}, protocol=5), preset=6)
    return atomic_write_bytes(path, data)


def load_splits(path, sets=None) -> dict:
    """The splits stored in ``path`` (all, or only ``sets``, each of which must be there)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such splits file; write one with `python -m lfm.data.bundle {path} "
                                "--sets ...` on a machine that has the data.")
    try:
        with lzma.open(path, "rb") as f:
            data = pickle.load(f)
    except (OSError, EOFError, lzma.LZMAError, pickle.UnpicklingError, AttributeError, ModuleNotFoundError) as e:
        raise ValueError(f"{path}: not a readable lfm splits file ({type(e).__name__}: {e}); write it again with "
                         "`python -m lfm.data.bundle`.") from e
    if not isinstance(data, dict) or data.get("header", {}).get("format") != FORMAT:
        raise ValueError(f"{path}: not an lfm splits file of format {FORMAT}; write it again with "
                         "`python -m lfm.data.bundle`.")
    if sets is None:
        return data["splits"]
    from .benchmark import pick

    return pick(data["splits"], sets, f"{path} holds no split for")


def main(argv=None) -> None:
    from . import benchmark

    ap = argparse.ArgumentParser(prog="python -m lfm.data.bundle",
                                 description="Write the benchmark splits of some sets into one file.")
    ap.add_argument("out", help="output file (.pkl.xz)")
    ap.add_argument("--sets", nargs="+", default=["all"], help="set names; 'all' = every in-distribution set")
    ap.add_argument("--test-sets", nargs="+", default=None,
                    help="keep the test part of these sets only (default: of every set)")
    ap.add_argument("--train-stride", type=int, default=1, help="use every k-th training frame")
    args = ap.parse_args(argv)
    splits = {c: benchmark.split_category(c, train_stride=args.train_stride) for c in benchmark.resolve(args.sets)}
    path = save_splits(args.out, splits, test_sets=args.test_sets)
    print(f"{path}: {len(splits)} sets, {path.stat().st_size / 2**20:.1f} MiB")


if __name__ == "__main__":
    main()
