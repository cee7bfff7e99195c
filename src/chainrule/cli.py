"""The ``chainrule`` command. Each subcommand is a small function that calls the library.

Exit codes: 0 on success, 2 for bad usage (argparse), 1 for an error explained in one line
(``--debug`` shows the traceback instead), 130 on Ctrl-C, 141 when stdout's reader has gone.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import sys
import time
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn

from chainrule import __version__
from chainrule.errors import ChainruleError

__all__ = ["main"]


# -- argument types: bad values are usage errors (exit 2) --------------------------------------------
def _int_at_least(low: int, what: str) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = low - 1
        if value < low:
            raise argparse.ArgumentTypeError(f"expected a {what} integer, got {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1, "positive")
_non_negative_int = _int_at_least(0, "non-negative")


def _finite_float(low: float = 0.0, *, inclusive: bool = False, high: float = math.inf) -> Any:
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        ok = math.isfinite(value) and (value >= low if inclusive else value > low) and value < high
        if not ok:
            bound = f">= {low:g}" if inclusive else f"> {low:g}"
            upper = f" and < {high:g}" if math.isfinite(high) else ""
            raise argparse.ArgumentTypeError(f"expected a finite number {bound}{upper}, got {text!r}")
        return value

    return parse


def _widths(text: str) -> list[int]:
    parts = text.split(",")
    if any(not part.strip() for part in parts):  # "128," or "128,,64": a width is missing
        raise argparse.ArgumentTypeError(f"expected comma-separated widths like 128,64 with none empty, got {text!r}")
    try:
        values = [int(part) for part in parts if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated layer widths like 128,64, got {text!r}") from None
    if not values or any(v < 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated positive widths like 128,64, got {text!r}")
    return values


def _onnx_file(text: str) -> str:
    """An ONNX file name: ends in .onnx, so that a slip such as ``--onnx RUN/model.safetensors --force`` cannot
    replace a file of another kind."""
    if not text.strip() or text.endswith(("/", os.sep)) or not text.lower().endswith(".onnx"):
        raise argparse.ArgumentTypeError(f"expected a file name ending in .onnx, such as model.onnx, got {text!r}")
    return text


def _floats(text: str) -> list[float]:
    try:
        values = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers like 1,0.5, got {text!r}") from None
    if not values or not all(math.isfinite(v) for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated finite numbers like 1,0.5, got {text!r}")
    return values


# -- demo --------------------------------------------------------------------------------------------
def _demo_xor(args: argparse.Namespace) -> int:
    from chainrule.demo import XOR_INPUTS, XOR_TARGETS, train_xor

    plural = "step" if args.steps == 1 else "steps"
    print(
        f"Training a 2-{args.hidden}-1 tanh network on XOR ({args.engine} engine, lr={args.lr}, "
        f"{args.steps} {plural} of gradient descent on the mean squared error)"
    )
    result = train_xor(steps=args.steps, lr=args.lr, hidden=args.hidden, seed=args.seed, engine=args.engine)
    losses = [float(loss) for loss in result.losses]
    diverged = next((step for step, loss in enumerate(losses) if not math.isfinite(loss)), None)
    last = args.steps - 1 if diverged is None else diverged
    every = max(1, args.steps // 10)
    shown = [step for step in range(0, args.steps, every) if step < last] + [last]
    for step in shown:  # six significant digits: a loss falling from 1e-3 to 1e-5 stays visible
        print(f"  step {step:5d}   loss {losses[step]:.6g}")
    if diverged is not None:
        from chainrule.train.callbacks import NonFiniteLossError

        raise NonFiniteLossError(
            f"demo xor: the loss became {losses[diverged]} at step {diverged} (--lr {args.lr:g} is too large "
            "for this network); try a smaller --lr"
        )
    print("Predictions after training:")
    for x, target, pred in zip(XOR_INPUTS, XOR_TARGETS, result.predictions):
        # a net far off (large outputs) shows 1.2e+30, not thirty digits
        said = f"{float(pred):+.4f}" if abs(pred) < 1e4 else f"{float(pred):+.4g}"
        print(f"  {x[0]:.0f} xor {x[1]:.0f} = {target:.0f}   network says {said}")
    learned = all(abs(p - t) < 0.5 for p, t in zip(result.predictions, XOR_TARGETS))
    print("Learned XOR." if learned else "Did not learn XOR yet: try more --steps or another --seed.")
    return 0


# -- explain ---------------------------------------------------------------------------------------
def _explain_worked_example(args: argparse.Namespace) -> int:
    from chainrule.explain import worked_example

    print(worked_example(steps=args.steps, format=args.format), end="")
    return 0


def _explain_vanishing(args: argparse.Namespace) -> int:
    from chainrule.explain import vanishing_demo

    print(vanishing_demo(depth=args.depth, width=args.width, steps=args.steps, seed=args.seed, plot=args.plot))
    return 0


def _explain_activations(args: argparse.Namespace) -> int:
    from chainrule.explain import activations_demo

    print(activations_demo(plot=args.plot))
    return 0


def _explain_modes(args: argparse.Namespace) -> int:
    from chainrule.explain import modes_demo

    print(modes_demo(sizes=args.sizes, repeats=args.repeats))
    return 0


def _explain_curvature(args: argparse.Namespace) -> int:
    from chainrule.errors import ArgumentError
    from chainrule.explain.curvature import curvature_demo

    try:
        report = curvature_demo(
            args.model, loss=args.loss, dataset=args.data, samples=args.samples, steps=args.steps, lr=args.lr,
            activation=args.activation, seed=args.seed, plot=args.plot,
        )  # fmt: skip
    except ArgumentError as error:  # a model that does not fit the data or the loss: a usage error (exit 2)
        args.curvature_parser.error(str(error).removeprefix("explain curvature: "))
    _print_report(report, args.format)
    return 0


def _print_report(report: Any, fmt: str) -> None:
    """An explain report in ``--format`` (text, markdown, html; else JSON)."""
    renderers = {"text": report.to_text, "markdown": report.to_markdown, "html": report.to_html}
    print(renderers.get(fmt, report.to_json)(), end="" if fmt != "json" else "\n")


def _gradcheck(args: argparse.Namespace) -> int:
    from chainrule.explain import gradcheck_command

    report, ok = gradcheck_command(
        ",".join(map(str, args.model)), activation=args.activation, loss=args.loss, batch=args.batch, seed=args.seed
    )
    print(report)
    return 0 if ok else 1


def _explain_network(args: argparse.Namespace) -> int:
    from chainrule.explain import explain_network

    missing = [flag for flag in ("model", "input", "target") if getattr(args, flag) is None]
    if missing:
        args.explain_parser.error(
            "without a subcommand, explain traces your network and needs "
            + ", ".join(f"--{flag}" for flag in missing)
            + " (or try: chainrule explain worked-example)"
        )
    _check_explain_sample(args)
    record = explain_network(
        args.model,
        args.input,
        args.target,
        activation=args.activation,
        output_activation=args.output_activation,
        loss=args.loss,
        lr=args.lr,
        seed=args.seed,
        weights=args.weights,
        steps=args.steps,
    )
    _print_report(record, args.format)
    return 0


def _check_explain_sample(args: argparse.Namespace) -> None:
    """--input and --target must fit --model (a usage error, exit 2, naming the flags)."""
    widths, error = args.model, args.explain_parser.error
    if len(widths) < 2:
        return  # explain_network says what a model needs
    spec = ",".join(map(str, widths))

    def values(items: list[float]) -> str:
        return f"{len(items)} value{'s' if len(items) != 1 else ''}"

    if len(args.input) != widths[0]:
        error(f"--input has {values(args.input)} but --model {spec} starts with {widths[0]} inputs")
    if args.loss == "cross_entropy":
        value = args.target[0]
        if len(args.target) != 1 or value != int(value) or not 0 <= value < widths[-1]:
            error(f"--target must be one class index in [0, {widths[-1]}) for --loss cross_entropy, got {args.target}")
    elif len(args.target) != widths[-1]:
        error(f"--target has {values(args.target)} but --model {spec} ends with {widths[-1]} outputs")


# -- train / evaluate / predict / datasets -----------------------------------------------------------
def _train(args: argparse.Namespace) -> int:
    from chainrule.train.runs import TRAIN_FLAGS, train_from_flags

    given = {name: getattr(args, name) for name in TRAIN_FLAGS}
    given["plots"] = False if args.no_plots else None
    group = _mpi_group(start=True)  # under mpiexec -n N: data-parallel, rank 0 prints and writes the run
    with contextlib.ExitStack() as stack:
        if group is not None and not group.is_leader:  # the other ranks train silently
            stack.enter_context(contextlib.redirect_stdout(stack.enter_context(open(os.devnull, "w"))))
        train_from_flags(given, resume=args.resume, force=args.force, verbose=0 if args.quiet else 1, distributed=group)
    return 0


def _mpi_group(start: bool = False) -> Any:
    """The process group when this command is one of several ranks started by mpiexec, else None. ``start``
    makes the group (importing mpi4py) when the launcher's environment says so; otherwise only an existing one."""
    if not start and "chainrule.distributed.group" not in sys.modules:
        return None  # nothing started a group: this is not a data-parallel run
    from chainrule.distributed.group import current, init, launched_by_mpi

    group = init() if start and launched_by_mpi() else current()
    return group if group is not None and group.size > 1 else None


def _evaluate(args: argparse.Namespace) -> int:
    from chainrule.train.runs import evaluate_run

    evaluate_run(args.run_dir, data=args.data, data_dir=args.data_dir, limit=args.limit)
    return 0


def _predict(args: argparse.Namespace) -> int:
    from chainrule.train.runs import predict_files

    predict_files(args.run_dir, args.files, top=args.top, show=args.show)
    return 0


def _export(args: argparse.Namespace) -> int:
    import numpy as np

    import chainrule.onnx
    from chainrule.errors import ArgumentError
    from chainrule.onnx.export import _onnx
    from chainrule.train.runs import load_run

    usage = args.export_parser.error  # a bad --onnx or --opset: one line, exit 2, before the run is read
    if os.path.isdir(args.onnx):
        usage(f"--onnx {args.onnx!r} is a directory; give a file such as model.onnx")
    parent = os.path.dirname(args.onnx) or "."
    if not os.path.isdir(parent):
        usage(f"--onnx {args.onnx!r}: the directory {parent!r} does not exist")
    newest = _onnx().defs.onnx_opset_version()  # a ChainruleError naming the extra when onnx is missing
    if not chainrule.onnx.MIN_OPSET <= args.opset <= newest:
        lowest = chainrule.onnx.MIN_OPSET
        usage(f"--opset must be from {lowest} to {newest} (the installed onnx's newest), got {args.opset}")
    if os.path.exists(args.onnx) and not args.force:
        raise ArgumentError(f"export: {args.onnx!r} already exists; pass --force to replace it")
    model, config = load_run(args.run_dir)
    shape = tuple(config["data"]["input_shape"])
    example = np.zeros((1, *shape), dtype=np.float32)  # fixes every dimension but the batch
    proto = chainrule.onnx.export(model, example, args.onnx, opset=args.opset, overwrite=args.force)
    outputs = ", ".join(
        f"{o.name} ({', '.join(d.dim_param or str(d.dim_value) for d in o.type.tensor_type.shape.dim)})"
        for o in proto.graph.output
    )
    print(f"wrote {args.onnx} (ONNX opset {args.opset}): input (batch, {', '.join(map(str, shape))}) -> {outputs}")
    return 0


def _datasets(args: argparse.Namespace) -> int:
    from chainrule.data import describe

    _check_data_dir(args.data_dir)
    for line in describe(args.data_dir):
        print(line)
    return 0


class _Parser(argparse.ArgumentParser):
    """An argument parser whose usage errors are one line on stderr (exit 2), naming the help to read. Flags
    must be spelled out: ``--epoch 3`` is an error, not ``--epochs 3``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        text = " ".join(message.split())
        self.exit(2, f"{self.prog}: error: {text} (see '{self.prog} --help')\n")


def _check_data_dir(data_dir: str | None) -> None:
    """``datasets`` lists where files are: a --data-dir or $CHAINRULE_DATA that does not exist is an error."""
    from chainrule.errors import DataError

    for what, value in (("--data-dir", data_dir), ("CHAINRULE_DATA", os.environ.get("CHAINRULE_DATA"))):
        if value and value.strip() and not os.path.exists(value):
            raise DataError(f"{what} {value!r} does not exist")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``chainrule`` command."""
    from chainrule.train.runs import DATASET_NAMES

    parser = _Parser(prog="chainrule", description="Backpropagation you can read, on NumPy.")
    parser.add_argument("--version", action="version", version=f"chainrule {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the full traceback on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = _Parser(add_help=False)  # --debug is accepted after the subcommand too
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    _add_train(commands, common)

    evaluate = commands.add_parser("evaluate", parents=[common], help="evaluate a trained run on its test split")
    evaluate.add_argument("run_dir", help="a directory written by 'chainrule train'")
    evaluate.add_argument("--data", choices=DATASET_NAMES, default=None, help="another dataset of the same shape")
    evaluate.add_argument("--data-dir", default=None)
    evaluate.add_argument("--limit", type=_positive_int, default=None, help="use only the first N test samples")
    evaluate.set_defaults(run=_evaluate)

    predict = commands.add_parser(
        "predict", parents=[common], help="classify images (.png) or arrays (.npy) with a trained run"
    )
    predict.add_argument("run_dir", help="a directory written by 'chainrule train'")
    predict.add_argument("files", nargs="+", metavar="IMAGE_OR_NPY")
    predict.add_argument("--top", type=_positive_int, default=3, help="how many classes to show (default 3)")
    predict.add_argument(
        "--show", metavar="PNG", default=None,
        help="write a PNG of what the model saw: each image cropped, centred and scaled like the data set's own",
    )  # fmt: skip
    predict.set_defaults(run=_predict)

    export = commands.add_parser("export", parents=[common], help="write a trained run's model as an ONNX file")
    export.add_argument("run_dir", help="a directory written by 'chainrule train'")
    export.add_argument(
        "--onnx", required=True, type=_onnx_file, metavar="FILE", help="the ONNX file to write, e.g. model.onnx"
    )
    export.add_argument("--opset", type=_positive_int, default=17, help="ONNX opset, 17 or later (default 17)")
    export.add_argument("--force", action="store_true", help="replace FILE if it exists")
    export.set_defaults(run=_export, export_parser=export)

    datasets = commands.add_parser("datasets", parents=[common], help="list the datasets and where each was found")
    datasets.add_argument("--data-dir", default=None)
    datasets.set_defaults(run=_datasets)

    demo = commands.add_parser("demo", parents=[common], help="small networks that really learn")
    demos = demo.add_subparsers(dest="demo", metavar="DEMO", required=True)
    xor = demos.add_parser("xor", parents=[common], help="train a 2-4-1 tanh network on XOR and print the loss falling")
    xor.add_argument("--steps", type=_positive_int, default=500, help="gradient-descent steps (default 500)")
    xor.add_argument("--lr", type=_finite_float(), default=0.2, help="learning rate (default 0.2)")
    xor.add_argument("--hidden", type=_positive_int, default=4, help="hidden units (default 4)")
    xor.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the initial weights (default 0)")
    xor.add_argument(
        "--engine",
        choices=("tensor", "scalar"),
        default="tensor",
        help="tensor engine (default) or the scalar Value engine",
    )
    xor.set_defaults(run=_demo_xor)
    _add_explain(commands, common)
    _add_gradcheck(commands, common)
    _add_playground(commands, common)
    return parser


def _add_playground(commands: Any, common: argparse.ArgumentParser) -> None:
    playground = commands.add_parser(
        "playground", parents=[common], help="train a small network in the browser and click any number to see why"
    )
    playground.add_argument("--port", type=_non_negative_int, default=0, help="port on 127.0.0.1 (default: a free one)")
    playground.add_argument("--no-browser", action="store_true", help="print the address without opening a browser")
    playground.add_argument(
        "--runs", action="append", default=None, metavar="DIR",
        help="where the digit pad finds 'chainrule train' runs (default ./runs; repeat for more)",
    )  # fmt: skip
    playground.set_defaults(run=_playground)


def _playground(args: argparse.Namespace) -> int:
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise ChainruleError(
            f"the playground needs {error.name}: install chainrule[playground] (pip install -e '.[playground]')"
        ) from None
    from chainrule.playground.server import serve

    serve(port=args.port, open_browser=not args.no_browser, runs=args.runs)
    return 0


def _add_train(commands: Any, common: argparse.ArgumentParser) -> None:
    """``train``: every flag defaults to None so that the run knows which ones the user passed; the values
    come from the presets table of :mod:`chainrule.train.config` (shown in the help) and TrainConfig."""
    from chainrule.nn.registry import ACTIVATIONS
    from chainrule.train.config import FIXED, OPTIMIZER_LR, PRESETS, TUNABLE, presets_table
    from chainrule.train.loop import OPTIMIZERS
    from chainrule.train.models import MODELS
    from chainrule.train.runs import DATASET_NAMES, SCHEDULES, TrainConfig

    base = TrainConfig()
    in_table = {key for row in PRESETS.values() for key in row}

    def default(name: str) -> str:
        value = getattr(base, name)
        text = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        return (
            f"default: per data/model, see the table below; otherwise {text}"
            if name in in_table
            else f"default: {text}"
        )

    train = commands.add_parser(
        "train",
        parents=[common],
        help="train a model on a dataset (default: an MLP on the bundled digits, offline)",
        description="Train a model, evaluate it on the test split, and write checkpoint, history and plots.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Defaults that depend on the data and the model (a flag you pass always wins; with another\n"
        "--optimizer than the row's, the learning rate is that optimizer's default:\n"
        + ", ".join(f"{k} {v:g}" for k, v in OPTIMIZER_LR.items())
        + "):\n"
        + presets_table()
        + "\n\nAn existing run directory is never overwritten: train refuses, unless --resume continues it or\n"
        "--force replaces it (the old run is kept until the new one has written its first checkpoint).\n"
        f"--resume may change {', '.join('--' + f for f in TUNABLE)} (applied and recorded);\n"
        "it refuses changes of "
        + ", ".join("--" + f.replace("_", "-") for f in FIXED[:6])
        + ",\n"
        + ", ".join("--" + f.replace("_", "-") for f in FIXED[6:])
        + ".",
    )
    train.add_argument("--data", choices=DATASET_NAMES, default=None, help=f"dataset (default: {base.data})")
    train.add_argument("--model", choices=MODELS, default=None, help=f"model (default: {base.model})")
    train.add_argument(
        "--hidden",
        type=_widths,
        default=None,
        help="hidden widths, e.g. 128,64 (MLP layers; hidden size of rnn/lstm/gru; dense width of the cnn; "
        + default("hidden")
        + ")",
    )
    train.add_argument("--activation", choices=tuple(ACTIVATIONS), default=None, help=default("activation"))
    train.add_argument(
        "--dropout", type=_finite_float(0.0, inclusive=True, high=1.0), default=None, help=default("dropout")
    )
    train.add_argument("--epochs", type=_positive_int, default=None, help=default("epochs"))
    train.add_argument("--lr", type=_finite_float(), default=None, help="learning rate (" + default("lr") + ")")
    train.add_argument("--optimizer", choices=OPTIMIZERS, default=None, help=default("optimizer"))
    train.add_argument(
        "--momentum", type=_finite_float(0.0, inclusive=True, high=1.0), default=None,
        help="SGD/RMSprop momentum (" + default("momentum") + ")",
    )  # fmt: skip
    train.add_argument(
        "--weight-decay", type=_finite_float(0.0, inclusive=True), default=None, help=default("weight_decay")
    )
    train.add_argument("--batch-size", type=_positive_int, default=None, help=default("batch_size"))
    train.add_argument(
        "--val-split", type=_finite_float(0.0, inclusive=True, high=1.0), default=None,
        help="fraction of the training split held out for validation (0: none; " + default("val_split") + ")",
    )  # fmt: skip
    train.add_argument(
        "--patience", type=_non_negative_int, default=None,
        help="early stopping after this many epochs without improvement (0: off; default 0)",
    )  # fmt: skip
    train.add_argument(
        "--schedule", choices=SCHEDULES, default=None,
        help="learning rate over the epochs: constant, or cosine (from --lr down to 0; " + default("schedule") + ")",
    )  # fmt: skip
    train.add_argument("--seed", type=_non_negative_int, default=None, help=f"default: {base.seed}")
    train.add_argument("--data-dir", default=None, help="where to look for dataset files first (default: none)")
    train.add_argument(
        "--limit", type=_positive_int, default=None,
        help="use only the first N training samples and the first N test samples (default: all)",
    )  # fmt: skip
    train.add_argument(
        "--out", default=None,
        help="run directory (default: runs/<data>-<model>); train refuses an existing one without --force/--resume",
    )  # fmt: skip
    mode = train.add_mutually_exclusive_group()
    mode.add_argument("--resume", action="store_true", help="continue --out from its last.safetensors (default: off)")
    mode.add_argument(
        "--force", action="store_true",
        help="replace an existing run directory (kept until the new run's first checkpoint; default: off)",
    )  # fmt: skip
    train.add_argument("--no-plots", action="store_true", help="do not write PNG plots (default: write them)")
    train.add_argument(
        "--quiet", action="store_true", help="print only the summary: no progress bars or epoch lines (default: off)"
    )
    train.set_defaults(run=_train)


def _add_explain(commands: Any, common: argparse.ArgumentParser) -> None:
    """``explain``: its own options trace a custom network; subcommands show prepared examples."""
    from chainrule.nn.registry import ACTIVATIONS
    from chainrule.nn.registry import LOSS_FORMULAS as LOSSES

    formats = ("text", "markdown", "html", "json")
    explain = commands.add_parser(
        "explain",
        parents=[common],
        help="every number of one backprop step, as tables (try: chainrule explain worked-example)",
        description="Trace one training step of a small network: forward pass, loss, backward pass (chain rule) "
        "and the SGD update, every number from the engine. Without a subcommand it traces the network "
        "given by --model (options go before any subcommand).",
    )
    explain.add_argument("--model", type=_widths, default=None, help="layer widths from inputs to outputs, e.g. 2,3,1")
    explain.add_argument(
        "--activation", choices=tuple(ACTIVATIONS), default="tanh", help="hidden layers (default tanh)"
    )
    explain.add_argument(
        "--output-activation", choices=tuple(ACTIVATIONS), default=None,
        help="after the last layer (default: sigmoid for bce, identity otherwise)",
    )  # fmt: skip
    explain.add_argument("--loss", choices=tuple(LOSSES), default="mse", help="default %(default)s")
    explain.add_argument("--input", type=_floats, default=None, help="one sample, e.g. 1,0")
    explain.add_argument(
        "--target", type=_floats, default=None, help="its target, e.g. 1 (a class index for cross_entropy)"
    )
    explain.add_argument("--lr", type=_finite_float(), default=0.1, help="learning rate (default %(default)s)")
    explain.add_argument("--seed", type=_non_negative_int, default=0, help="seed of the initial weights (default 0)")
    explain.add_argument(
        "--weights", default=None, metavar="FILE.json", help='{"layers": [{"weight": [[...]], "bias": [...]}, ...]}'
    )
    explain.add_argument("--steps", type=_non_negative_int, default=0, help="also show the error after N steps")
    explain.add_argument(
        "--format", choices=formats, default="text",
        help='default %(default)s; json is strict: overflowed values are the strings "inf", "-inf", "nan"',
    )  # fmt: skip
    explain.set_defaults(run=_explain_network, explain_parser=explain)

    examples = explain.add_subparsers(dest="explain_command", metavar="EXAMPLE", required=False)
    worked = examples.add_parser(
        "worked-example",
        parents=[common],
        help="the classic 2-2-2 sigmoid network (Matt Mazur's step by step), one step in full",
    )
    worked.add_argument("--steps", type=_non_negative_int, default=10_000, help="then train N steps (default 10000)")
    worked.add_argument("--format", choices=formats, default=argparse.SUPPRESS, help="default text")
    worked.set_defaults(run=_explain_worked_example)

    vanishing = examples.add_parser(
        "vanishing",
        parents=[common],
        help="a deep sigmoid net's gradients vanish, the same net with ReLU + He init keeps them (measured)",
    )
    vanishing.add_argument("--depth", type=_positive_int, default=10, help="hidden layers (default 10)")
    vanishing.add_argument("--width", type=_positive_int, default=32, help="units per layer (default 32)")
    vanishing.add_argument("--steps", type=_positive_int, default=50, help="training steps (default 50)")
    vanishing.add_argument("--seed", type=_non_negative_int, default=0, help="default 0")
    vanishing.add_argument("--plot", default=None, metavar="PNG", help="also plot gradient norms per layer")
    vanishing.set_defaults(run=_explain_vanishing)

    activations = examples.add_parser(
        "activations", parents=[common], help="the sigmoid family scaled to slope 1, and why its derivatives vanish"
    )
    activations.add_argument("--plot", default=None, metavar="PNG", help="also plot the functions and derivatives")
    activations.set_defaults(run=_explain_activations)

    modes = examples.add_parser(
        "modes", parents=[common], help="a gradient by forward mode (N JVPs) against reverse mode (one backward)"
    )
    modes.add_argument("--sizes", type=_widths, default=[10, 100, 1000, 10000], help="parameter counts")
    modes.add_argument("--repeats", type=_positive_int, default=3, help="timing repeats (default 3)")
    modes.set_defaults(run=_explain_modes)

    curv = examples.add_parser(
        "curvature",
        parents=[common],
        help="Hessian, Gauss-Newton, Fisher and empirical Fisher of a small net, before and after training",
        description="Train a small network on a toy data set and show its Hessian, generalised Gauss-Newton "
        "matrix, Fisher and empirical Fisher side by side (at initialisation and after --steps of gradient "
        "descent), their eigenvalues and their relative distances, all from chainrule.curvature's operators.",
    )
    curv.add_argument("--model", type=_widths, default=[2, 3, 1], help="layer widths, 2 inputs first (default 2,3,1)")
    curv.add_argument("--loss", choices=("mse", "cross_entropy"), default="mse", help="default %(default)s")
    curv.add_argument("--data", choices=("xor", "moons", "circles", "blobs"), default="xor", help="default xor")
    curv.add_argument("--samples", type=_positive_int, default=8, help="data points, 2 to 10000 (default 8)")
    curv.add_argument(
        "--steps", type=_non_negative_int, default=3000, help="gradient-descent steps, at most 100000 (default 3000)"
    )
    curv.add_argument("--lr", type=_finite_float(), default=0.5, help="learning rate (default %(default)s)")
    curv.add_argument("--activation", choices=tuple(ACTIVATIONS), default="tanh", help="hidden layers (default tanh)")
    curv.add_argument("--seed", type=_non_negative_int, default=0, help="data and initial weights (default 0)")
    curv.add_argument(
        "--plot", default=None, metavar="PNG", help="also write heatmaps of the four matrices (a .png file)"
    )
    curv.add_argument("--format", choices=formats, default=argparse.SUPPRESS, help="default text")
    curv.set_defaults(run=_explain_curvature, curvature_parser=curv)


def _add_gradcheck(commands: Any, common: argparse.ArgumentParser) -> None:
    """``gradcheck``: a whole-model gradient check of an MLP against central differences in float64."""
    gradcheck = commands.add_parser(
        "gradcheck",
        parents=[common],
        help="check backprop against finite differences for every parameter of an MLP (float64)",
    )
    gradcheck.add_argument("--model", type=_widths, default=[4, 8, 3], help="layer widths, e.g. 4,8,3 (default)")
    gradcheck.add_argument("--activation", default="tanh", help="hidden activation (default tanh)")
    gradcheck.add_argument("--loss", choices=("mse", "cross_entropy"), default="mse", help="default %(default)s")
    gradcheck.add_argument("--batch", type=_positive_int, default=4, help="samples (default 4)")
    gradcheck.add_argument("--seed", type=_non_negative_int, default=0, help="default 0")
    gradcheck.set_defaults(run=_gradcheck)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``chainrule`` command with ``argv`` (default: ``sys.argv[1:]``); return the exit code.

    Every failure inside a command is one line on stderr and exit code 1 (``--debug``: the traceback
    instead); Ctrl-C is one line and 130; a reader that closes the pipe early (``chainrule ... | head``)
    ends the command quietly with 141, as a process killed by SIGPIPE would.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help()
        return 2
    try:
        with _quiet_numpy(), warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.run(args)
    except KeyboardInterrupt:
        print("chainrule: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _closed_pipe()
    except Exception as error:
        if args.debug:
            raise
        group = _mpi_group()
        if group is not None and not group.is_leader:
            time.sleep(1.0)  # an error every rank meets is printed once: rank 0's abort ends this rank first
        where = f"rank {group.rank} of {group.size}: " if group is not None else ""
        print(f"chainrule: error: {where}{_one_line(error)}", file=sys.stderr)
        if group is not None:
            group.abort(1)  # the other ranks stop now instead of waiting for this one in a collective
        return 1


def _one_line(error: BaseException) -> str:
    """The message of ``error`` on one line; errors outside chainrule's own are prefixed with what they are."""
    if isinstance(error, MemoryError):
        detail = str(error) or "an allocation failed"
        text = f"out of memory: {detail} (try a smaller model, batch or --limit)"
    elif isinstance(error, RecursionError):
        text = f"input nested too deeply to process ({error})"
    elif isinstance(error, (ChainruleError, OSError, ValueError, TypeError, ArithmeticError)):
        text = str(error) or type(error).__name__
    else:  # KeyError('x') prints as 'x': say what it is
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return " ".join(text.split())


def _show_warning(message: Warning | str, category: type[Warning], *_: Any, **__: Any) -> None:
    """A warning as one line, ``chainrule: warning: ...`` (no source line, no file name)."""
    text = " ".join(str(message).split())
    print(f"chainrule: warning: {text}", file=sys.stderr)


def _quiet_numpy() -> Any:
    """NumPy's floating-point warnings off for the command: results are checked for NaN and Inf instead.

    The library reports non-finite values itself (``NonFiniteLossError``, warnings naming the count), so
    NumPy's ``RuntimeWarning: overflow encountered in ...`` would only print noise before that message.
    """
    import numpy as np

    return np.errstate(all="ignore")


def _closed_pipe() -> int:
    """The reader of stdout went away: point stdout at /dev/null so the exit flush cannot fail, return 141."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (captured in tests)
        pass
    return 141


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
