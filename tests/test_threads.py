"""Engine state that two threads training their own models at the same time must not share.

Each test forces the interleaving with events and barriers (no sleeps): the playground trains one session per
worker thread, several at once, and a user may run two fits in threads.
"""

from __future__ import annotations

import threading

import numpy as np

import chainrule as cr
from chainrule import autograd


def _run(*targets) -> None:
    threads = [threading.Thread(target=target) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
        assert not thread.is_alive()


def _hold_a_sweep(sweep, inside: threading.Event, release: threading.Event) -> None:
    """Run ``sweep(loss, leaf)`` (``autograd.grad`` or a backward) with a hook that sets ``inside`` and waits for
    ``release``: a reverse sweep held open in this thread while another thread acts."""
    y = cr.tensor([1.0], requires_grad=True)

    def hook(grad):
        inside.set()
        assert release.wait(10)

    y.register_hook(hook)
    sweep((y * 2).sum(), y)


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
        _hold_a_sweep(autograd.grad, b_in_hook, release_b)

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
        _hold_a_sweep(lambda loss, _: loss.backward(), b_in_hook, release_b)

    a = threading.Thread(target=train_a, name="a")
    b = threading.Thread(target=train_b, name="b")
    for thread in (a, b):
        thread.start()
    for thread in (a, b):
        thread.join(30)
    assert ran_in == ["a"]


def test_rng_using_gives_each_thread_its_own_generator_and_restores_the_global_one():
    """Two sessions build their models inside rng.using at once (the playground's build_model): each draws from
    its own generator, and the global one is back afterwards whichever block ends first."""
    from chainrule import rng

    def reference(seed: int) -> np.ndarray:
        with rng.using(np.random.default_rng(seed)):
            return cr.randn(3).data.copy()

    expected = {0: reference(0), 1: reference(1)}
    original = rng.default_generator()
    barrier = threading.Barrier(2)
    drawn: dict[int, np.ndarray] = {}

    def build(seed: int, leaves_first: bool) -> None:
        with rng.using(np.random.default_rng(seed)):
            barrier.wait(10)  # both blocks are open
            drawn[seed] = cr.randn(3).data.copy()
            barrier.wait(10)
            if not leaves_first:
                barrier.wait(10)  # the other block ends first
        if leaves_first:
            barrier.wait(10)

    _run(lambda: build(0, True), lambda: build(1, False))
    assert np.array_equal(drawn[0], expected[0]) and np.array_equal(drawn[1], expected[1])
    assert rng.default_generator() is original


def test_manual_seed_inside_using_reseeds_only_this_threads_generator():
    """fit(seed=...) inside rng.using: each thread's fit gets its own seeded stream; the global one is
    untouched (as before: manual_seed inside using never outlived the block)."""
    from chainrule import rng

    original = rng.default_generator()
    state = rng.get_state()
    with rng.using(np.random.default_rng(5)):
        rng.manual_seed(0)
        inside = cr.randn(3).data.copy()
    assert rng.default_generator() is original and rng.get_state() == state
    rng.manual_seed(0)
    assert np.array_equal(cr.randn(3).data, inside)
    rng.set_state(state)


def test_the_in_place_clock_never_goes_back_when_a_thread_is_switched_out_inside_a_change():
    """Thread A is held inside ``_Version.bump`` between reading the process-wide clock and storing it (forced
    with opcode tracing: where a tracer lets the GIL switch, and anywhere on free-threaded Python). Before the
    fix B changed its own tensors meanwhile, A then stored its stale clock, and B's next in-place change of a
    tensor its graph had saved looked older than the graph: backward gave a wrong gradient without an error."""
    import dis
    import sys

    from chainrule.errors import GradientError
    from chainrule.tensor import _Version

    store = next(
        i.offset for i in dis.get_instructions(_Version.bump) if i.opname == "STORE_ATTR" and i.argval == "clock"
    )
    paused, resume, b_recorded = threading.Event(), threading.Event(), threading.Event()

    def tracer(frame, event, arg):
        if event != "call" or frame.f_code is not _Version.bump.__code__:
            return None
        frame.f_trace_opcodes = True

        def at_opcode(frame, event, arg):
            if event == "opcode" and frame.f_lasti == store and not paused.is_set():
                paused.set()
                assert resume.wait(10)
            return at_opcode

        return at_opcode

    def change_a() -> None:
        t = cr.zeros(2)
        sys.settrace(tracer)
        try:
            t += 1
        finally:
            sys.settrace(None)

    outcome: dict[str, object] = {}

    def train_b() -> None:
        a = cr.tensor([2.0], requires_grad=True)
        b = cr.tensor([3.0])
        for _ in range(5):
            b += 0  # B's own changes move the clock on
        loss = (a * b).sum()  # mul saves b
        b_recorded.set()
        assert resume.wait(10)
        thread_a.join(10)  # A has stored its clock
        b += 1  # changes what mul saved
        try:
            loss.backward()
            outcome["grad"] = a.grad.data.copy()
        except GradientError as error:
            outcome["error"] = error

    thread_a = threading.Thread(target=change_a)
    thread_a.start()
    assert paused.wait(10)
    thread_b = threading.Thread(target=train_b)
    thread_b.start()
    # After the fix B waits for A's change to end (the clock's lock); before it, B got through at once.
    b_recorded.wait(1)
    resume.set()
    thread_a.join(10)
    thread_b.join(10)
    assert "error" in outcome, f"backward used a changed tensor: gradient {outcome.get('grad')}"


def test_two_fits_in_threads_in_lockstep_equal_the_same_fits_one_after_the_other():
    """Two threads fit their own models batch by batch in lockstep (dropout, a GradientMonitor, ``seed=``, each
    inside ``rng.using`` for its own stream), one evaluating under ``no_grad`` between its batches: weights,
    losses and the monitor's norms equal those of the two fits run alone."""
    from chainrule import nn, rng
    from chainrule.explain.monitor import GradientMonitor
    from chainrule.train.callbacks import Callback
    from chainrule.train.loop import fit

    x = np.random.default_rng(0).standard_normal((48, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)

    class Lockstep(Callback):
        def __init__(self, barrier: threading.Barrier | None, model, evaluate: bool) -> None:
            self.barrier, self.net, self.evaluate = barrier, model, evaluate

        def on_batch_end(self, state) -> None:
            if self.barrier is not None:
                self.barrier.wait(10)  # both threads have taken a step
            if self.evaluate:
                with cr.no_grad():
                    self.net(cr.tensor(x))
            if self.barrier is not None:
                self.barrier.wait(10)

    def run(seed: int, barrier: threading.Barrier | None) -> tuple:
        with rng.using(np.random.default_rng(seed)):
            model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Dropout(0.3), nn.Linear(8, 2))
            monitor = GradientMonitor(warn=False)
            callbacks = [Lockstep(barrier, model, seed == 1), monitor]
            history = fit(model, (x, y), epochs=2, batch_size=16, lr=0.01, seed=seed, verbose=0, callbacks=callbacks)
        return [p.data.copy() for p in model.parameters()], history["loss"], monitor.layer_norms()

    alone = {seed: run(seed, None) for seed in (0, 1)}
    barrier = threading.Barrier(2)
    together: dict[int, tuple] = {}
    _run(*(lambda seed=seed: together.__setitem__(seed, run(seed, barrier)) for seed in (0, 1)))
    for seed in (0, 1):
        weights, losses, norms = together[seed]
        assert all(np.array_equal(a, b) for a, b in zip(alone[seed][0], weights))
        assert losses == alone[seed][1] and norms == alone[seed][2]


def test_playground_store_lookup_is_not_lost_to_a_session_added_in_a_worker_thread():
    """The event loop looks the oldest session up while a worker thread adds the 17th (``new_session`` runs in
    ``asyncio.to_thread``), which drops the oldest: before the fix the lookup passed its membership test, lost
    the session before reading it and raised ``KeyError`` (a 400 instead of "reload the page")."""
    from collections import OrderedDict

    from chainrule.playground import server

    checked, go_on = threading.Event(), threading.Event()

    class Pausing(OrderedDict):
        def __contains__(self, key) -> bool:
            found = super().__contains__(key)
            if threading.current_thread().name == "lookup":
                checked.set()
                go_on.wait(10)
            return found

    store = server._Store()
    store.sessions = Pausing()
    keys = [store.add_session(object()) for _ in range(server._KEEP)]
    outcome: dict[str, object] = {}

    def lookup() -> None:
        try:
            outcome["session"] = store.session(keys[0])
        except Exception as error:
            outcome["error"] = error

    looker = threading.Thread(target=lookup, name="lookup")
    looker.start()
    assert checked.wait(10)
    adder = threading.Thread(target=lambda: store.add_session(object()))
    adder.start()
    adder.join(1)  # after the fix the addition waits for the lookup (the store's lock); before, it dropped keys[0]
    go_on.set()
    looker.join(10)
    adder.join(10)
    assert "error" not in outcome, repr(outcome.get("error"))
    assert outcome["session"] is store.sessions[keys[0]]  # looked up first: the most recent, kept
    assert len(store.sessions) == server._KEEP and keys[1] not in store.sessions  # the oldest then went
