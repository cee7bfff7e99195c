"""Engine state that two threads training their own models at the same time must not share.

Each test forces the interleaving with events and barriers (no sleeps): the playground trains one session per
worker thread, several at once, and a user may run two fits in threads.
"""

from __future__ import annotations

import threading

import chainrule as cr
from chainrule import autograd


def _run(*targets) -> None:
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()


def test_queue_callback_reaches_this_threads_backward_while_another_thread_runs_grad():
    """A's hook runs while B's grad() sweep is open (B started after A): A is still in its backward, and its
    callback runs at the end of A's sweep, in A."""
    a_in_hook, b_in_hook, release_b = threading.Event(), threading.Event(), threading.Event()
    seen: dict[str, object] = {}

    def train_a() -> None:
        x = cr.tensor([1.0], requires_grad=True)

        def hook(grad):
            a_in_hook.set()
            assert b_in_hook.wait(10)
            seen["in_backward"] = autograd.in_backward()
            autograd.queue_callback(lambda: seen.setdefault("callback", threading.current_thread()))

        x.register_hook(hook)
        seen["thread"] = threading.current_thread()
        try:
            (x * 2).sum().backward()
        except Exception as error:  # before the fix: GradientError, no backward() sweep is running
            seen["error"] = error
        finally:
            release_b.set()

    def evaluate_b() -> None:
        assert a_in_hook.wait(10)
        y = cr.tensor([1.0], requires_grad=True)

        def hook(grad):
            b_in_hook.set()
            assert release_b.wait(10)

        y.register_hook(hook)
        autograd.grad((y * 2).sum(), y)

    _run(train_a, evaluate_b)
    assert "error" not in seen, seen.get("error")
    assert seen["in_backward"] is True
    assert seen["callback"] is seen["thread"]


def test_a_callback_queued_in_one_thread_never_runs_in_another_threads_backward():
    """B's backward opens after A's: A's hook must queue onto A's sweep, not onto B's (the innermost overall)."""
    a_in_hook, b_in_hook, release_b = threading.Event(), threading.Event(), threading.Event()
    ran_in: list[str] = []

    def train_a() -> None:
        x = cr.tensor([1.0], requires_grad=True)

        def hook(grad):
            a_in_hook.set()
            assert b_in_hook.wait(10)
            autograd.queue_callback(lambda: ran_in.append(threading.current_thread().name))

        x.register_hook(hook)
        try:
            (x * 2).sum().backward()
        finally:
            release_b.set()

    def train_b() -> None:
        assert a_in_hook.wait(10)
        y = cr.tensor([1.0], requires_grad=True)

        def hook(grad):
            b_in_hook.set()
            assert release_b.wait(10)

        y.register_hook(hook)
        (y * 2).sum().backward()

    a = threading.Thread(target=train_a, name="a")
    b = threading.Thread(target=train_b, name="b")
    for thread in (a, b):
        thread.start()
    for thread in (a, b):
        thread.join(30)
    assert ran_in == ["a"]
