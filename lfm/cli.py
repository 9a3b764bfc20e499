"""The ``lfm`` command line. ``lfm --help`` lists the commands; ``lfm COMMAND --help`` explains each."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def _reproduce(args: argparse.Namespace) -> int:
    from .pipeline import run_notebooks

    return run_notebooks(run="paper" if args.paper else "smoke", only=args.only, timeout=args.timeout)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="lfm", description="3D-LFM reproduction bundle: lift 2D keypoints to 3D.")
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser(
        "reproduce",
        help="run every numbered notebook headless with papermill",
        description="Run notebooks/NN_*.ipynb in order. --smoke (default): the notebooks' CPU smoke defaults, "
        "outputs under results/smoke and figures/smoke. --paper: parameters from params/paper/NN_*.yaml, outputs "
        "under results/ and figures/. Stops at the first failure and keeps that executed notebook.",
    )
    mode = r.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="CPU smoke size (default)")
    mode.add_argument("--paper", action="store_true", help="paper-scale parameters from params/paper/")
    r.add_argument("--only", nargs="+", metavar="PREFIX", help="run only notebooks whose name starts so, e.g. 00 03")
    r.add_argument("--timeout", type=int, default=3600, help="seconds allowed per cell (default 3600)")
    r.set_defaults(func=_reproduce)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
