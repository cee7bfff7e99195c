"""Grad mode and anomaly mode are per thread, as in PyTorch.

A server renders frames under ``no_grad`` in one thread while another thread trains (the playground does
this with two sessions): the first thread's block must not turn graph recording off in the second, where a
backward would then fail (or an optimizer step silently skip every parameter).
"""

from __future__ import annotations

import threading

import numpy as np

import chainrule as cr
from chainrule import nn, optim
from chainrule.autograd import detect_anomaly, is_anomaly_enabled


def _in_thread(body) -> tuple[threading.Thread, threading.Event]:
    """Start ``body`` in a thread; return it and an event set once ``body`` has entered its block."""
    entered = threading.Event()

    def run() -> None:
        body(entered)

    thread = threading.Thread(target=run)
    thread.start()
    assert entered.wait(10)
    return thread, entered


def test_no_grad_in_another_thread_leaves_this_thread_recording():
    release = threading.Event()

    def evaluate(entered: threading.Event) -> None:
        with cr.no_grad():
            assert not cr.is_grad_enabled()
            entered.set()
            release.wait(10)

    thread, _ = _in_thread(evaluate)
    try:
        model = nn.Linear(2, 1)
        before = model.weight.data.copy()
        loss = model(cr.ones((4, 2))).sum()
        assert cr.is_grad_enabled() and loss.requires_grad
        loss.backward()
        optim.SGD(model.parameters(), lr=0.1).step()
        assert not np.array_equal(model.weight.data, before)
    finally:
        release.set()
        thread.join()


def test_a_new_thread_starts_recording_even_from_inside_no_grad():
    seen = []
    with cr.no_grad():
        thread = threading.Thread(target=lambda: seen.append(cr.is_grad_enabled()))
        thread.start()
        thread.join()
        assert not cr.is_grad_enabled()
    assert seen == [True] and cr.is_grad_enabled()


def test_one_decorated_function_in_two_threads_restores_each_threads_mode():
    """The decorator is one no_grad instance: each thread keeps its own stack of saved modes."""
    inside = threading.Barrier(2)
    results = {}

    @cr.no_grad()
    def evaluate(name: str) -> None:
        inside.wait(10)  # both threads are inside the same instance at once
        results[name] = cr.is_grad_enabled()
        inside.wait(10)

    def run(name: str, outer: bool) -> None:
        with cr.autograd.set_grad_enabled(outer):
            evaluate(name)
            results[name + " after"] = cr.is_grad_enabled()

    threads = [threading.Thread(target=run, args=("a", True)), threading.Thread(target=run, args=("b", False))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {"a": False, "b": False, "a after": True, "b after": False}
    assert cr.is_grad_enabled()


def test_anomaly_mode_is_per_thread():
    release = threading.Event()

    def check(entered: threading.Event) -> None:
        with detect_anomaly():
            entered.set()
            release.wait(10)

    thread, _ = _in_thread(check)
    try:
        assert not is_anomaly_enabled()
        with np.errstate(invalid="ignore"):
            y = cr.log(cr.tensor([-1.0]))  # NaN, but this thread has no anomaly mode on: no error
        assert np.isnan(y.data).all()
    finally:
        release.set()
        thread.join()
