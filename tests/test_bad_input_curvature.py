"""Bad input to ``chainrule.curvature`` and ``chainrule explain curvature``: one table per surface.

Every row must raise the named exception from :mod:`chainrule.errors` with a message holding every listed
phrase (the function or flag, the value, what was expected) -- never a NumPy/SciPy error from inside, never
a silent NaN or a wrong number. CLI rows run ``main(argv)`` in-process: exit 2 for usage, 1 for errors,
exactly one line on stderr.

Choices the tables pin:

- A model in training mode with an active ``Dropout`` (or a recurrent layer's inter-layer dropout) or a
  ``BatchNorm`` that tracks running statistics is refused: each product would see a different function
  (a random "matrix" on which Lanczos and CG return wrong numbers) or overwrite the running statistics.
  ``model.eval()`` is the fix the message names.
- NaN or Inf in ``x`` or ``y`` is refused up front, with the count.
- ``seed`` is a non-negative integer everywhere (as for ``manual_seed``).
- ``explain curvature --plot`` must end in ``.png``; an existing PNG is replaced, any other file refused;
  checked before the minutes of work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest

import chainrule as cr
from chainrule import curvature as C
from chainrule import nn
from chainrule.cli import main
from chainrule.errors import ArgumentError, ChainruleError, DTypeError, ShapeError

OPERATORS = {"hessian": C.hessian, "ggn": C.ggn, "fisher": C.fisher, "empirical_fisher": C.empirical_fisher}


def _mlp(dtype: Any = np.float64, out: int = 2) -> nn.Module:
    cr.manual_seed(0)
    return nn.Sequential(nn.Linear(3, 4, dtype=dtype), nn.Tanh(), nn.Linear(4, out, dtype=dtype))


X = np.random.default_rng(0).normal(size=(6, 3))
Y = np.arange(6) % 2
Y_MSE = np.random.default_rng(1).normal(size=(6, 2))


def _frozen() -> nn.Module:
    model = _mlp()
    for p in model.parameters():
        p.requires_grad = False
    return model


def _dropout() -> nn.Module:
    return nn.Sequential(nn.Linear(3, 4, dtype=np.float64), nn.Dropout(0.5), nn.Linear(4, 2, dtype=np.float64))


def _batchnorm() -> nn.Module:
    return nn.Sequential(
        nn.Linear(3, 4, dtype=np.float64), nn.BatchNorm1d(4, dtype=np.float64), nn.Linear(4, 2, dtype=np.float64)
    )


@dataclass(frozen=True)
class Bad:
    name: str
    call: Callable[[Callable[..., Any]], Any]  # receives the operator constructor
    error: type[Exception]
    parts: tuple[str, ...]


def bad(name: str, call: Callable[[Callable[..., Any]], Any], error: type[Exception], *parts: str) -> Bad:
    return Bad(name, call, error, parts)


# rows run for each of the four constructors; "{op}" in a phrase is the constructor's name
BATCH_ROWS = [
    bad("x wrong features", lambda f: f(_mlp(), "cross_entropy", np.ones((6, 5)), Y), ShapeError, "{op}:", "(6, 5)"),
    bad("y wrong length", lambda f: f(_mlp(), "cross_entropy", X, Y[:4]), ShapeError, "{op}:", "batch size 6, got 4"),
    bad("y float labels", lambda f: f(_mlp(), "cross_entropy", X, Y.astype(float)), ShapeError, "{op}:", "(6,)"),
    bad("labels out of range", lambda f: f(_mlp(), "cross_entropy", X, Y + 5), ShapeError, "{op}:", "label 5"),
    bad("labels negative", lambda f: f(_mlp(), "cross_entropy", X, Y - 3), ShapeError, "{op}:", "label -3"),
    bad(
        "NaN in x", lambda f: f(_mlp(), "cross_entropy", np.where(X > 1, np.nan, X), Y), ArgumentError, "{op}:", "x has"
    ),
    bad("Inf in y (mse)", lambda f: f(_mlp(), "mse", X, np.full((6, 2), np.inf)), ArgumentError, "{op}:", "y has 12"),
    bad("mse y wrong shape", lambda f: f(_mlp(), "mse", X, np.ones((6, 3))), ShapeError, "{op}:", "(6, 3)"),
    bad("no parameters", lambda f: f(nn.Tanh(), "mse", X, X), ArgumentError, "Tanh has no trainable parameters"),
    bad("all frozen", lambda f: f(_frozen(), "cross_entropy", X, Y), ArgumentError, "no trainable parameters"),
    bad("unknown loss", lambda f: f(_mlp(), "foo", X, Y), ArgumentError, "{op}:", "unknown loss 'foo'"),
    bad("loss of wrong kind", lambda f: f(_mlp(), 3, X, Y), ArgumentError, "{op}:", "got int"),
    bad("strings as x", lambda f: f(_mlp(), "cross_entropy", "abc", Y), DTypeError, "{op}:", "strings"),
    bad("empty batch", lambda f: f(_mlp(), "cross_entropy", np.ones((0, 3)), Y[:0]), ArgumentError, "(0, 2)"),
    bad("not a module", lambda f: f(lambda v: v, "cross_entropy", X, Y), ArgumentError, "nn.Module, got function"),
    bad(
        "dropout in train mode",
        lambda f: f(_dropout(), "cross_entropy", X, Y),
        ArgumentError,
        "Dropout at '1'",
        "training mode",
        "model.eval()",
    ),
    bad(
        "batchnorm in train mode",
        lambda f: f(_batchnorm(), "cross_entropy", X, Y),
        ArgumentError,
        "BatchNorm1d at '1'",
        "running statistics",
        "model.eval()",
    ),
    bad(
        "lstm dropout in train mode",
        lambda f: f(
            nn.LSTM(3, 2, num_layers=2, dropout=0.3, dtype=np.float64), "mse", np.ones((4, 2, 3)), np.ones((4, 2, 2))
        ),
        ArgumentError,
        "LSTM",
        "between its layers",
    ),
]


@pytest.mark.parametrize("owner", list(OPERATORS))
@pytest.mark.parametrize("row", BATCH_ROWS, ids=lambda r: r.name)
def test_bad_batch(owner: str, row: Bad) -> None:
    with pytest.raises(row.error) as caught:
        row.call(OPERATORS[owner])
    message = str(caught.value)
    for part in row.parts:
        assert part.format(op=owner) in message, message


def test_eval_mode_models_are_accepted_and_leave_running_statistics_alone() -> None:
    model = _batchnorm().eval()
    before = model[1].running_mean.numpy().copy()
    G = C.ggn(model, "cross_entropy", X, Y)
    dense = G.to_dense()
    np.testing.assert_allclose(dense, dense.T, atol=1e-12)
    np.testing.assert_array_equal(model[1].running_mean.numpy(), before)
    assert C.hessian(_dropout().eval(), "cross_entropy", X, Y).shape == (26, 26)


def test_float32_model_with_float64_data_computes_in_the_model_dtype() -> None:
    # no refusal: the operator works in the parameters' dtype, and agrees with casting x first
    H32 = C.hessian(_mlp(np.float32), "cross_entropy", X, Y)
    H32_cast = C.hessian(_mlp(np.float32), "cross_entropy", X.astype(np.float32), Y)
    assert H32.dtype == np.float32
    np.testing.assert_allclose(H32.to_dense(), H32_cast.to_dense(), atol=1e-5)


H = C.hessian(_mlp(), "cross_entropy", X, Y)
P = H.shape[0]
PARTS = [np.ones((4, 3)), np.ones(4), np.ones((2, 4)), np.ones(2)]

OPERATOR_ROWS = [
    bad(
        "fisher mc_samples 0",
        lambda: C.fisher(_mlp(), "cross_entropy", X, mc_samples=0),
        ArgumentError,
        "fisher: mc_samples",
        "got 0",
    ),
    bad("fisher mc_samples -1", lambda: C.fisher(_mlp(), "cross_entropy", X, mc_samples=-1), ArgumentError, "got -1"),
    bad("fisher mc_samples 1.5", lambda: C.fisher(_mlp(), "cross_entropy", X, mc_samples=1.5), ArgumentError, "1.5"),
    bad("fisher mc_samples True", lambda: C.fisher(_mlp(), "cross_entropy", X, mc_samples=True), ArgumentError, "True"),
    bad(
        "fisher seed str",
        lambda: C.fisher(_mlp(), "cross_entropy", X, mc_samples=2, seed="a"),
        ArgumentError,
        "fisher: seed must be a non-negative integer",
        "'a'",
    ),
    bad("fisher seed -1", lambda: C.fisher(_mlp(), "cross_entropy", X, mc_samples=2, seed=-1), ArgumentError, "-1"),
    bad("fisher seed float", lambda: C.fisher(_mlp(), "cross_entropy", X, seed=1.5), ArgumentError, "1.5"),
    bad("fisher seed None", lambda: C.fisher(_mlp(), "cross_entropy", X, seed=None), ArgumentError, "None"),
    bad("fisher L1 loss", lambda: C.fisher(_mlp(), nn.L1Loss(), X), ArgumentError, "L1Loss is not supported"),
    bad("hessian unknown method", lambda: C.hessian(_mlp(), "mse", X, Y_MSE, method="x"), ArgumentError, "'x'"),
    bad("eigh k > P", lambda: H.eigh(k=P + 1), ArgumentError, f"k={P + 1}", f"size {P}"),
    bad("eigh k = 0", lambda: H.eigh(k=0), ArgumentError, "k must be an integer >= 1", "got 0"),
    bad("eigh k = -1", lambda: H.eigh(k=-1), ArgumentError, "got -1"),
    bad("eigh k float", lambda: H.eigh(k=2.0), ArgumentError, "got 2.0"),
    bad("eigh which", lambda: H.eigh(which="top"), ArgumentError, "which", "'top'"),
    bad("eigh method", lambda: H.eigh(method="arpack"), ArgumentError, "Hessian.eigh", "'arpack'"),
    bad("eigh tol NaN", lambda: H.eigh(tol=float("nan")), ArgumentError, "tol", "nan"),
    bad("eigh seed str", lambda: H.eigh(seed="x"), ArgumentError, "seed", "'x'"),
    bad("eigh scipy k = P", lambda: H.eigh(k=P, method="scipy"), ArgumentError, f"1 <= k < {P}"),
    bad("eigh scipy k float", lambda: H.eigh(k=1.5, method="scipy"), ArgumentError, "Hessian.eigh: k", "1.5"),
    bad("eigh scipy tol NaN", lambda: H.eigh(tol=float("nan"), method="scipy"), ArgumentError, "Hessian.eigh: tol"),
    bad("eigh scipy maxiter 0", lambda: H.eigh(maxiter=0, method="scipy"), ArgumentError, "maxiter", "got 0"),
    bad("@ wrong length", lambda: H @ np.ones(P + 1), ShapeError, f"shape ({P},)", f"({P + 1},)"),
    bad("@ row vector", lambda: H @ np.ones((1, P)), ShapeError, f"(1, {P})"),
    bad("@ 3-d", lambda: H @ np.ones((P, 2, 1)), ShapeError, f"({P}, 2, 1)"),
    bad("@ complex", lambda: H @ (np.ones(P) * 1j), DTypeError, "Hessian", "complex128"),
    bad("@ strings", lambda: H @ np.array(["a"] * P), DTypeError, "Hessian", "real numbers"),
    bad("@ None", lambda: H @ None, DTypeError, "Hessian", "object"),
    bad("@ NaN", lambda: H @ np.full(P, np.nan), ArgumentError, "Hessian", "non-finite"),
    bad("@ list of wrong count", lambda: H @ PARTS[:1], ShapeError, "got 1 arrays for 4 parameters"),
    bad("@ list of wrong shapes", lambda: H @ [np.ones((3, 4)), *PARTS[1:]], ShapeError, "'0.weight'", "(3, 4)"),
    bad("@ empty list", lambda: H @ [], ShapeError, "got 0 arrays"),
    bad("@ list with complex", lambda: H @ [PARTS[0] * 1j, *PARTS[1:]], DTypeError, "'0.weight'", "complex"),
    bad("@ list with strings", lambda: H @ [np.full((4, 3), "a"), *PARTS[1:]], DTypeError, "'0.weight'", "<U1"),
    bad("to_dense over the limit", lambda: H.to_dense(limit=5), ArgumentError, "over the limit of 5", "diagonal()"),
    bad("to_dense limit -1", lambda: H.to_dense(limit=-1), ArgumentError, "limit", "got -1"),
    bad("to_dense limit str", lambda: H.to_dense(limit="x"), ArgumentError, "limit", "'x'"),
    bad("diagonal method", lambda: H.diagonal(method="foo"), ArgumentError, "Hessian.diagonal", "'foo'"),
    bad("diagonal samples 0", lambda: H.diagonal(method="hutchinson", samples=0), ArgumentError, "samples", "got 0"),
    bad("trace method", lambda: H.trace(method="foo"), ArgumentError, "Hessian.trace", "'foo'"),
    bad("trace hutch++ samples 2", lambda: H.trace(method="hutch++", samples=2), ArgumentError, ">= 3", "got 2"),
    bad("trace seed str", lambda: H.trace(method="hutchinson", seed="x"), ArgumentError, "seed", "'x'"),
    bad("block unknown", lambda: H.block("foo"), ArgumentError, "unknown parameters ['foo']", "'0.weight'"),
    bad("block nothing", lambda: H.block(), ArgumentError, "at least one parameter name"),
    bad("cg damping < 0", lambda: C.cg(H, np.ones(P), damping=-1), ArgumentError, "cg: damping", "got -1"),
    bad("cg damping NaN", lambda: C.cg(H, np.ones(P), damping=float("nan")), ArgumentError, "cg: damping", "nan"),
    bad("cg damping str", lambda: C.cg(H, np.ones(P), damping="1"), ArgumentError, "cg: damping", "'1'"),
    bad("cg damping bool", lambda: C.cg(H, np.ones(P), damping=True), ArgumentError, "cg: damping", "True"),
    bad("cg tol NaN", lambda: C.cg(H, np.ones(P), tol=float("nan")), ArgumentError, "cg: tol"),
    bad("cg maxiter 0", lambda: C.cg(H, np.ones(P), maxiter=0), ArgumentError, "cg: maxiter"),
    bad("cg b wrong length", lambda: C.cg(H, np.ones(P + 1)), ShapeError, f"({P + 1},)"),
    bad("cg b NaN", lambda: C.cg(H, np.full(P, np.nan)), ArgumentError, "cg: b", "non-finite"),
    bad("cg x0 NaN", lambda: C.cg(H, np.ones(P), x0=np.full(P, np.nan)), ArgumentError, "cg: x0", "non-finite"),
    bad("cg array x0 wrong", lambda: C.cg(np.eye(3), np.ones(3), x0=np.ones(4)), ShapeError, "cg: x0", "(4,)"),
    bad("cg array b complex", lambda: C.cg(np.eye(3), np.ones(3) * 1j), DTypeError, "cg: b", "complex"),
    bad("cg array NaN", lambda: C.cg(np.full((3, 3), np.nan), np.ones(3)), ArgumentError, "cg: the matrix", "NaN"),
    bad("cg array not symmetric", lambda: C.cg(np.triu(np.ones((3, 3))), np.ones(3)), ArgumentError, "not symmetric"),
    bad("cg not an operator", lambda: C.cg("abc", np.ones(3)), ArgumentError, "cg: expected a square array", "str"),
    bad("lanczos NaN array", lambda: C.lanczos(np.full((3, 3), np.nan)), ArgumentError, "lanczos: the matrix"),
    bad("lanczos not symmetric", lambda: C.lanczos(np.array([[1.0, 2.0], [0.0, 1.0]])), ArgumentError, "symmetric"),
    bad("lanczos complex", lambda: C.lanczos(np.eye(3) * 1j), DTypeError, "lanczos", "complex128"),
    bad("hutchinson NaN", lambda: C.hutchinson_trace(np.full((3, 3), np.nan)), ArgumentError, "hutchinson_trace"),
    bad("hutchinson seed str", lambda: C.hutchinson_trace(np.eye(3), seed="x"), ArgumentError, "seed", "'x'"),
]


@pytest.mark.parametrize("row", OPERATOR_ROWS, ids=lambda r: r.name)
def test_bad_operator_use(row: Bad) -> None:
    with pytest.raises(row.error) as caught:
        row.call()  # type: ignore[call-arg]
    message = str(caught.value)
    for part in row.parts:
        assert part in message, message


def test_odd_but_valid_products() -> None:
    assert (H @ np.ones((P, 0))).shape == (P, 0)  # an empty block of vectors
    np.testing.assert_array_equal(H @ np.ones(P, dtype=int), H @ np.ones(P))  # integers are converted
    dense = H.to_dense()
    assert C.cg(H, np.ones(P), damping=np.int64(1)).converged  # NumPy integers are numbers
    # the Hessian is indefinite here: CG stops at the first direction of non-positive curvature and says so
    smallest = np.linalg.eigvalsh(dense)[0]
    assert smallest < 0
    with pytest.warns(RuntimeWarning, match=r"cg: stopped .* not positive definite.*raise damping above") as caught:
        result = C.cg(H, np.ones(P))
    assert not result.converged and result.reason == "non-positive curvature"
    bound = float(str(caught[0].message).split("raise damping above ")[1].split(" ")[0])
    assert 0 < bound <= -smallest + 1e-12  # a true lower bound on the damping needed
    assert C.cg(H, np.ones(P), damping=-smallest + 1e-3, maxiter=10_000).converged


def test_missing_scipy_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_scipy(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("scipy"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_scipy)
    with pytest.raises(ChainruleError, match=r"needs SciPy: pip install 'chainrule\[curvature\]'"):
        H.eigh(k=2, method="scipy")
    with pytest.raises(ChainruleError, match="needs SciPy"):
        H.to_scipy()
    assert H.eigh(k=1)[0].shape == (1,)  # the built-in Lanczos needs nothing


# -- the command line ------------------------------------------------------------------------------------
CURV = ["explain", "curvature", "--steps", "0", "--samples", "4"]


def _png(tmp: Any) -> str:
    path = tmp / "old.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 8)
    return str(path)


CLI_ROWS = [
    ("model 2,,1", lambda tmp: ["--model", "2,,1"], 2, ("--model", "'2,,1'")),
    ("model 0", lambda tmp: ["--model", "0"], 2, ("--model", "'0'")),
    ("model -1", lambda tmp: ["--model", "-1"], 2, ("--model", "'-1'")),
    ("model huge", lambda tmp: ["--model", "2,3,999999"], 2, ("--model 2-3-999999", "at most 200")),
    ("model 3 inputs", lambda tmp: ["--model", "3,3,1"], 2, ("--model", "2 inputs")),
    ("steps negative", lambda tmp: ["--steps", "-1"], 2, ("--steps", "'-1'")),
    ("steps huge", lambda tmp: ["--steps", str(10**20)], 2, ("--steps", "from 0 to 100000")),
    ("samples huge", lambda tmp: ["--samples", "1000000"], 2, ("--samples", "10000")),
    ("samples 1", lambda tmp: ["--samples", "1"], 2, ("--samples", "got 1")),
    ("loss unknown", lambda tmp: ["--loss", "hinge"], 2, ("--loss", "'hinge'")),
    ("format unknown", lambda tmp: ["--format", "yaml"], 2, ("--format", "'yaml'")),
    ("lr NaN", lambda tmp: ["--lr", "nan"], 2, ("--lr", "'nan'")),
    ("cross_entropy outputs", lambda tmp: ["--loss", "cross_entropy", "--model", "2,3,3"], 2, ("needs 2 outputs",)),
    ("plot a directory", lambda tmp: ["--plot", str(tmp)], 2, ("--plot", "is a directory")),
    ("plot not png", lambda tmp: ["--plot", str(tmp / "x.txt")], 2, ("--plot", "ending in .png")),
    ("plot empty", lambda tmp: ["--plot", ""], 2, ("--plot", "file name")),
    ("plot missing dir", lambda tmp: ["--plot", str(tmp / "no" / "x.png")], 2, ("--plot", "does not exist")),
    ("plot over a non-PNG", lambda tmp: ["--plot", _not_png(tmp)], 2, ("--plot", "not a PNG", "refusing")),
    ("lr diverges", lambda tmp: ["--steps", "10", "--lr", "1e10"], 1, ("--lr", "smaller")),
]


def _not_png(tmp: Any) -> str:
    path = tmp / "notes.png"
    path.write_text("my notes")
    return str(path)


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as exit_:  # argparse's usage errors
        return int(exit_.code or 0)


@pytest.mark.parametrize("row", CLI_ROWS, ids=lambda r: r[0])
def test_explain_curvature_bad_flags(row: Any, tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    _, argv, code, parts = row
    args = argv(tmp_path)
    assert _exit_code([*CURV, *args]) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.endswith("\n") and "Traceback" not in err, err
    for part in parts:
        assert part in err, err
    if "not a PNG" in parts:
        assert open(args[1]).read() == "my notes"  # the user's file is untouched


def test_plot_replaces_an_existing_png_and_needs_matplotlib(
    tmp_path: Any, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("matplotlib")
    old = _png(tmp_path)
    assert main([*CURV, "--plot", old]) == 0
    assert open(old, "rb").read(8) == b"\x89PNG\r\n\x1a\n" and len(open(old, "rb").read()) > 1000
    capsys.readouterr()
    import chainrule.plotting

    def missing() -> Any:
        raise ChainruleError("plots need matplotlib: pip install 'chainrule[plot]'")

    monkeypatch.setattr(chainrule.plotting, "pyplot", missing)
    assert _exit_code([*CURV, "--plot", str(tmp_path / "new.png")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "chainrule[plot]" in err
    assert not (tmp_path / "new.png").exists()


DEMO_ROWS = [
    ("seed str", {"seed": "x"}, ("--seed", "'x'")),
    ("seed negative", {"seed": -1}, ("--seed", "-1")),
    ("widths a string", {"widths": "2,3,1"}, ("--model", "'2,3,1'")),
    ("widths floats", {"widths": (2, 3.5, 1)}, ("--model", "3.5")),
    ("lr NaN", {"lr": float("nan")}, ("--lr", "nan")),
    ("lr negative", {"lr": -1.0}, ("--lr", "-1.0")),
    ("steps float", {"steps": 2.5}, ("--steps", "2.5")),
    ("plot an int", {"plot": 3}, ("--plot", "3")),
]


@pytest.mark.parametrize("row", DEMO_ROWS, ids=lambda r: r[0])
def test_curvature_demo_bad_arguments(row: Any) -> None:
    from chainrule.explain.curvature import curvature_demo

    _, kwargs, parts = row
    with pytest.raises(ArgumentError) as caught:
        curvature_demo(**{"steps": 0, **kwargs})
    for part in ("explain curvature:", *parts):
        assert part in str(caught.value), str(caught.value)
