"""The ``chainrule`` command. Each subcommand is a small function that calls the library.

Exit codes: 0 on success, 2 for bad usage (argparse), 1 for an error explained in one line
(``--debug`` shows the traceback instead).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from chainrule import __version__
from chainrule.errors import ChainruleError

__all__ = ["main"]


def _demo_xor(args: argparse.Namespace) -> int:
    from chainrule.demo import XOR_INPUTS, XOR_TARGETS, train_xor

    print(
        f"Training a 2-{args.hidden}-1 tanh network on XOR ({args.engine} engine, lr={args.lr}, "
        f"{args.steps} steps of gradient descent on the mean squared error)"
    )
    result = train_xor(steps=args.steps, lr=args.lr, hidden=args.hidden, seed=args.seed, engine=args.engine)
    every = max(1, args.steps // 10)
    for step in range(0, args.steps, every):
        print(f"  step {step:5d}   loss {result.losses[step]:.6f}")
    print(f"  step {args.steps - 1:5d}   loss {result.losses[-1]:.6f}")
    print("Predictions after training:")
    for x, target, pred in zip(XOR_INPUTS, XOR_TARGETS, result.predictions):
        print(f"  {x[0]:.0f} xor {x[1]:.0f} = {target:.0f}   network says {pred:+.4f}")
    learned = all(abs(p - t) < 0.5 for p, t in zip(result.predictions, XOR_TARGETS))
    print("Learned XOR." if learned else "Did not learn XOR yet: try more --steps or another --seed.")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``chainrule`` command."""
    parser = argparse.ArgumentParser(prog="chainrule", description="Backpropagation you can read, on NumPy.")
    parser.add_argument("--version", action="version", version=f"chainrule {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    demo = commands.add_parser("demo", help="small networks that really learn")
    demos = demo.add_subparsers(dest="demo", metavar="DEMO", required=True)
    xor = demos.add_parser("xor", help="train a 2-4-1 tanh network on XOR and print the loss falling")
    xor.add_argument("--steps", type=int, default=500, help="gradient-descent steps (default 500)")
    xor.add_argument("--lr", type=float, default=0.2, help="learning rate (default 0.2)")
    xor.add_argument("--hidden", type=int, default=4, help="hidden units (default 4)")
    xor.add_argument("--seed", type=int, default=0, help="seed of the initial weights (default 0)")
    xor.add_argument(
        "--engine",
        choices=("tensor", "scalar"),
        default="tensor",
        help="tensor engine (default) or the scalar Value engine",
    )
    xor.set_defaults(run=_demo_xor)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``chainrule`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except (ChainruleError, ValueError, ArithmeticError, OSError) as error:
        if args.debug:
            raise
        print(f"chainrule: error: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
