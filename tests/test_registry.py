"""One table per named concept: every front end reads nn.registry, nothing keeps its own copy."""

from __future__ import annotations

import argparse
import importlib
import pathlib

import numpy as np
import pytest

import chainrule
from chainrule import nn
from chainrule.gradcheck import central_differences
from chainrule.nn import registry

SRC = pathlib.Path(__file__).resolve().parents[1] / "src" / "chainrule"


def test_front_ends_share_the_tables():
    from chainrule import explain, train
    from chainrule.explain import network
    from chainrule.train import loop, models

    assert models.ACTIVATIONS is registry.ACTIVATIONS
    assert network.ACTIVATIONS is explain.ACTIVATIONS is registry.ACTIVATIONS
    assert loop.LOSSES is train.LOSSES is registry.LOSSES
    trace = importlib.import_module("chainrule.explain.trace")  # the module, not explain.trace the function
    assert trace.LOSSES is explain.LOSSES is registry.LOSS_FORMULAS


def _choices(parser: argparse.ArgumentParser, *path: str) -> dict[str, tuple]:
    for name in path:
        sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = sub.choices[name]
    return {a.dest: tuple(a.choices) for a in parser._actions if a.choices and not isinstance(a.choices, dict)}


@pytest.mark.parametrize(
    ("command", "dest", "table"),
    [
        ("train", "activation", registry.ACTIVATIONS),
        ("explain", "activation", registry.ACTIVATIONS),
        ("explain", "output_activation", registry.ACTIVATIONS),
        ("explain", "loss", registry.LOSS_FORMULAS),
    ],
)
def test_cli_choices_are_the_registry(command, dest, table):
    from chainrule.cli import build_parser

    assert _choices(build_parser(), command)[dest] == tuple(table)


@pytest.mark.parametrize("name", [*registry.ACTIVATIONS, "logistic"])
def test_sklearn_builds_every_activation(name):
    pytest.importorskip("sklearn")
    from chainrule.sklearn import MLPRegressor

    model = MLPRegressor(hidden_layer_sizes=(3,), activation=name)
    model._check_params()
    expected = registry.ACTIVATIONS["sigmoid" if name == "logistic" else name]
    assert type(model._build(2, 1, [3])[1]) is expected


def test_every_loss_name_builds_its_module():
    for name, cls in registry.LOSSES.items():
        assert type(registry.resolve_loss(name)) is cls
    assert set(registry.CLASS_INDEX_LOSSES) <= set(registry.LOSSES.values())


def test_every_activation_is_an_elementwise_module():
    x = np.linspace(-2, 2, 5)
    for name, cls in registry.ACTIVATIONS.items():
        module = cls()
        assert isinstance(module, nn.Module), name
        assert module(chainrule.tensor(x)).shape == (5,)


def test_no_package_imports_another_packages_private_plot_helpers():
    offenders = [
        str(path.relative_to(SRC))
        for path in SRC.rglob("*.py")
        if "from chainrule.train.plots import _" in path.read_text()
    ]
    assert offenders == []


def test_central_differences_restores_the_array_and_matches_the_derivative():
    x = np.array([[0.5, -1.0], [2.0, 0.0]])
    before = x.copy()
    slopes = central_differences(lambda: np.sin(x).sum(), x, range(x.size), 1e-6)
    np.testing.assert_array_equal(x, before)
    np.testing.assert_allclose(slopes, np.cos(before).ravel(), atol=1e-8)


def test_central_differences_gives_one_row_per_index_of_a_vector_output():
    x = np.array([1.0, 2.0, 3.0])
    rows = central_differences(lambda: x**2, x, [2, 0], 1e-5)  # d(x²)/dx_j, rows for j = 2 then 0
    np.testing.assert_allclose(rows, [[0, 0, 6], [2, 0, 0]], atol=1e-6)
