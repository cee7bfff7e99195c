"""Every loss against PyTorch in float64 (value and gradient), every reduction, and gradcheck."""

from __future__ import annotations

import numpy as np
import pytest

import chainrule as cr
import chainrule.nn.functional as F
from chainrule import nn
from helpers import TORCH_MISSING, torch

needs_torch = pytest.mark.skipif(torch is None, reason=TORCH_MISSING)
rng = np.random.default_rng(0)

LOGITS = rng.standard_normal((6, 4)) * 3
LABELS = np.array([0, 3, 1, 1, 2, 3])
PROBS = rng.dirichlet(np.ones(4), size=6)
LOGITS_3D = rng.standard_normal((3, 4, 5))
LABELS_3D = rng.integers(0, 4, (3, 5))
REGRESSION = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
BINARY = rng.uniform(0.05, 0.95, (5, 3)), (rng.random((5, 3)) > 0.5).astype(np.float64)
WEIGHTS = np.array([0.5, 2.0, 1.0, 3.0])


def _case(name, ours, theirs, prediction, target, **kwargs):
    return pytest.param(ours, theirs, prediction, target, kwargs, id=name)


CASES = [
    _case("mse", nn.MSELoss, "MSELoss", *REGRESSION),
    _case("l1", nn.L1Loss, "L1Loss", *REGRESSION),
    _case("huber", nn.HuberLoss, "HuberLoss", *REGRESSION, delta=0.5),
    _case("bce", nn.BCELoss, "BCELoss", *BINARY),
    _case("bce-weight", nn.BCELoss, "BCELoss", *BINARY, weight=np.array([1.0, 2.0, 0.5])),
    _case("bce-logits", nn.BCEWithLogitsLoss, "BCEWithLogitsLoss", REGRESSION[0] * 30, BINARY[1]),
    _case(
        "bce-logits-pos-weight",
        nn.BCEWithLogitsLoss,
        "BCEWithLogitsLoss",
        REGRESSION[0],
        BINARY[1],
        pos_weight=np.array([1.0, 3.0, 0.5]),
    ),
    _case("cross-entropy", nn.CrossEntropyLoss, "CrossEntropyLoss", LOGITS, LABELS),
    _case("cross-entropy-weight", nn.CrossEntropyLoss, "CrossEntropyLoss", LOGITS, LABELS, weight=WEIGHTS),
    _case("cross-entropy-ignore", nn.CrossEntropyLoss, "CrossEntropyLoss", LOGITS, LABELS, ignore_index=1),
    _case("cross-entropy-smoothing", nn.CrossEntropyLoss, "CrossEntropyLoss", LOGITS, LABELS, label_smoothing=0.1),
    _case(
        "cross-entropy-weight-smoothing-ignore",
        nn.CrossEntropyLoss,
        "CrossEntropyLoss",
        LOGITS,
        LABELS,
        weight=WEIGHTS,
        label_smoothing=0.2,
        ignore_index=3,
    ),
    _case("cross-entropy-probabilities", nn.CrossEntropyLoss, "CrossEntropyLoss", LOGITS, PROBS),
    _case(
        "cross-entropy-probabilities-smoothing-weight",
        nn.CrossEntropyLoss,
        "CrossEntropyLoss",
        LOGITS,
        PROBS,
        label_smoothing=0.1,
        weight=WEIGHTS,
    ),
    _case("cross-entropy-spatial", nn.CrossEntropyLoss, "CrossEntropyLoss", LOGITS_3D, LABELS_3D),
    _case("nll", nn.NLLLoss, "NLLLoss", LOGITS, LABELS),
    _case("nll-weight-ignore", nn.NLLLoss, "NLLLoss", LOGITS, LABELS, weight=WEIGHTS, ignore_index=0),
    _case("multi-margin", nn.MultiMarginLoss, "MultiMarginLoss", LOGITS, LABELS),
    _case(
        "multi-margin-p2-weight", nn.MultiMarginLoss, "MultiMarginLoss", LOGITS, LABELS, p=2, margin=0.5, weight=WEIGHTS
    ),
]


@needs_torch
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("ours, theirs, prediction, target, kwargs", CASES)
def test_loss_matches_pytorch(ours, theirs, prediction, target, kwargs, reduction):
    t_kwargs = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    ours_kwargs = {k: cr.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    x = cr.tensor(prediction, requires_grad=True)
    tx = torch.tensor(prediction, requires_grad=True)
    loss = ours(reduction=reduction, **ours_kwargs)(x, cr.tensor(target))
    t_loss = getattr(torch.nn, theirs)(reduction=reduction, **t_kwargs)(tx, torch.tensor(target))
    np.testing.assert_allclose(loss.data, t_loss.detach().numpy(), rtol=1e-10, atol=1e-12)
    cotangent = np.random.default_rng(1).standard_normal(loss.shape)
    (loss * cr.tensor(cotangent)).sum().backward()
    (t_loss * torch.tensor(cotangent)).sum().backward()
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-9, atol=1e-12)


def test_cross_entropy_is_finite_for_huge_logits():
    logits = cr.tensor([[1e4, -1e4, 0.0], [-1e4, 1e4, 0.0]], requires_grad=True)
    loss = F.cross_entropy(logits, cr.tensor([1, 1]))
    loss.backward()
    assert np.isfinite(loss.item()) and loss.item() == pytest.approx(1e4, rel=1e-6)
    assert np.all(np.isfinite(logits.grad.data))


@pytest.mark.parametrize(
    "function, make_inputs",
    [
        (lambda x: F.cross_entropy(x, LABELS, label_smoothing=0.1), lambda: [LOGITS]),
        (lambda x: F.cross_entropy(x, LABELS_3D), lambda: [LOGITS_3D]),
        (lambda x, t: F.cross_entropy(x, t), lambda: [LOGITS, PROBS]),
        (lambda x: F.binary_cross_entropy_with_logits(x, BINARY[1]), lambda: [REGRESSION[0]]),
        (lambda x: F.huber_loss(x, REGRESSION[1], delta=0.7), lambda: [REGRESSION[0]]),
        (lambda x: F.multi_margin_loss(x, LABELS, p=2), lambda: [LOGITS]),
    ],
)
def test_losses_pass_gradcheck(function, make_inputs):
    assert cr.gradcheck(function, make_inputs())


def test_loss_errors_name_the_batch_sizes():
    with pytest.raises(cr.ShapeError, match="expected target batch size 64, got 32"):
        nn.CrossEntropyLoss()(cr.zeros(64, 10), cr.zeros(32, dtype="int64"))
    with pytest.raises(cr.ShapeError, match="expected target batch size 64, got 32"):
        nn.MSELoss()(cr.zeros(64, 1), cr.zeros(32, 1))
    with pytest.raises(cr.ShapeError, match="label 10 is out of range for 10 classes"):
        nn.CrossEntropyLoss()(cr.zeros(2, 10), cr.tensor([3, 10]))
    with pytest.raises(cr.DTypeError, match="class labels must be integers"):
        nn.NLLLoss()(cr.zeros(2, 3), np.array(["a", "b"]))
    with pytest.raises(ValueError, match="reduction must be"):
        nn.MSELoss(reduction="average")
    with pytest.raises(ValueError, match="probabilities in \\[0, 1\\]"):
        nn.BCELoss()(cr.tensor([1.5]), cr.tensor([1.0]))


def test_multi_margin_with_two_classes_is_the_micrograd_hinge_loss():
    scores = np.array([0.3, -1.2, 2.0, 0.9])
    labels = np.array([1, 0, 1, 0])
    two_class = np.stack([np.zeros(4), scores], axis=1)
    ours = F.multi_margin_loss(cr.tensor(two_class), labels, margin=1.0, reduction="none").data * 2
    y = np.where(labels == 1, 1.0, -1.0)
    np.testing.assert_allclose(ours, np.maximum(0, 1 - y * scores))


@needs_torch
def test_cross_entropy_ignoring_every_sample_is_nan_with_zero_gradient_as_pytorch():
    logits = cr.tensor(LOGITS, requires_grad=True)
    t_logits = torch.tensor(LOGITS, requires_grad=True)
    labels = np.full(6, -100)
    loss = F.cross_entropy(logits, labels)
    t_loss = torch.nn.functional.cross_entropy(t_logits, torch.from_numpy(labels))
    assert np.isnan(loss.item()) and np.isnan(t_loss.item())
    loss.backward()
    t_loss.backward()
    np.testing.assert_array_equal(logits.grad.data, t_logits.grad.numpy())


def test_cross_entropy_keeps_its_own_copy_of_the_labels():
    labels = LABELS.copy()
    logits = cr.tensor(LOGITS, requires_grad=True)
    F.cross_entropy(logits, LABELS).backward()
    expected = logits.grad.data.copy()
    logits.grad = None
    loss = F.cross_entropy(logits, labels)
    labels[:] = 3  # a reused label buffer, changed before backward
    loss.backward()
    np.testing.assert_array_equal(logits.grad.data, expected)


@needs_torch
def test_binary_cross_entropy_gradient_is_finite_at_zero_and_one_as_pytorch():
    """PyTorch clamps the logs at -100 and divides by max(p (1 - p), 1e-12): no NaN at p = 0 or 1."""
    p = np.array([0.0, 1.0, 0.3, 1.0, 0.0, 0.999])
    t = np.array([1.0, 0.0, 1.0, 1.0, 0.0, 0.2])
    x = cr.tensor(p, requires_grad=True)
    tx = torch.tensor(p, requires_grad=True)
    loss = F.binary_cross_entropy(x, cr.tensor(t), reduction="sum")
    t_loss = torch.nn.functional.binary_cross_entropy(tx, torch.tensor(t), reduction="sum")
    loss.backward()
    t_loss.backward()
    assert loss.item() == pytest.approx(t_loss.item(), rel=1e-12)
    np.testing.assert_allclose(x.grad.data, tx.grad.numpy(), rtol=1e-12)
    assert np.all(np.isfinite(x.grad.data))


@needs_torch
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("delta", [0.5, 1.0, 1e10, float("inf")])
def test_huber_loss_for_any_delta_matches_pytorch_with_its_gradient(delta, dtype):
    """``delta=inf`` is half the squared error (PyTorch), and a huge delta keeps its gradient in float32."""
    prediction = np.array([[0.0, 3.0, -5.0], [0.25, -0.75, 40.0]], dtype=dtype)
    target = np.array([[0.0, 1.0, 1.0], [0.0, 0.0, -2.0]], dtype=dtype)
    x = cr.tensor(prediction, requires_grad=True)
    loss = nn.HuberLoss(delta=delta)(x, cr.tensor(target))
    loss.backward()
    tx = torch.tensor(prediction, requires_grad=True)
    t_loss = torch.nn.HuberLoss(delta=delta)(tx, torch.tensor(target))
    t_loss.backward()
    tolerance = 1e-5 if dtype == np.float32 else 1e-12
    assert loss.item() == pytest.approx(t_loss.item(), rel=tolerance)
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=tolerance, atol=tolerance)


@needs_torch
@pytest.mark.parametrize(
    "ours, theirs",
    [
        (lambda: nn.HuberLoss(delta=float("nan")), lambda: torch.nn.HuberLoss(delta=float("nan"))(*_pair())),
        (
            lambda: nn.CrossEntropyLoss(label_smoothing=1.5),
            lambda: torch.nn.CrossEntropyLoss(label_smoothing=1.5)(torch.zeros(2, 3), torch.tensor([0, 1])),
        ),
        (lambda: nn.MultiMarginLoss(p=3), lambda: torch.nn.MultiMarginLoss(p=3)),
    ],
)
def test_hyperparameters_pytorch_refuses_are_refused_at_construction(ours, theirs):
    with pytest.raises((ValueError, RuntimeError)):
        theirs()
    with pytest.raises(cr.ArgumentError):
        ours()


def _pair():
    return torch.zeros(3), torch.ones(3)


@needs_torch
def test_a_nan_margin_pytorch_accepts_silently_is_refused():
    """PyTorch returns a loss of 0 for ``margin=nan`` (every hinge compares false); that hides the mistake."""
    assert torch.nn.MultiMarginLoss(margin=float("nan"))(torch.ones(2, 3), torch.tensor([0, 1])).item() == 0.0
    with pytest.raises(cr.ArgumentError, match="MultiMarginLoss: margin must be in \\(-inf, inf\\), got nan"):
        nn.MultiMarginLoss(margin=float("nan"))
    with pytest.raises(cr.ArgumentError, match="multi_margin_loss: margin"):
        F.multi_margin_loss(cr.ones(2, 3), cr.tensor([0, 1]), margin=float("nan"))


@pytest.mark.parametrize(
    "module, functional",
    [
        (lambda: nn.HuberLoss(reduction="avg"), lambda: F.huber_loss(cr.ones(2), cr.ones(2), "avg")),
        (lambda: nn.NLLLoss(ignore_index=0.5), lambda: F.nll_loss(cr.zeros(2, 3), cr.tensor([0, 1]), ignore_index=0.5)),
        (
            lambda: nn.CrossEntropyLoss(weight=[1.0, float("inf"), 1.0]),
            lambda: F.cross_entropy(cr.zeros(2, 3), cr.tensor([0, 1]), weight=[1.0, float("inf"), 1.0]),
        ),
    ],
)
def test_loss_modules_and_functions_refuse_the_same_hyperparameters_alike(module, functional):
    with pytest.raises(cr.ArgumentError) as from_module:
        module()
    with pytest.raises(cr.ArgumentError) as from_function:
        functional()
    # one rule, one wording: only the owner's name differs
    assert str(from_module.value).split(": ", 1)[1] == str(from_function.value).split(": ", 1)[1]
