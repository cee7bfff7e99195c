"""The check the bad-input tables (``test_bad_input.py``, ``test_bad_input_optim.py``) make of a refused call."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import pytest

from chainrule.errors import ChainruleError


def assert_refused(call: Callable[[], Any], error: type[ChainruleError], parts: Iterable[str]) -> None:
    """``call()`` must raise a chainrule error of type ``error`` whose message holds every string of ``parts``;
    a raw NumPy or Python exception fails the test with its type and message."""
    with pytest.raises(Exception) as info:  # checked below: a raw exception must fail clearly
        call()
    raised = info.value
    assert isinstance(raised, ChainruleError), f"raw {type(raised).__name__} escaped: {raised}"
    assert isinstance(raised, error), f"expected {error.__name__}, got {type(raised).__name__}: {raised}"
    message = str(raised)
    missing = [part for part in parts if part not in message]
    assert not missing, f"message {message!r} lacks {missing}"
