"""``pip install 'chainrule[playground]'`` alone must bring every package the page's buttons need."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path


def test_the_playground_extra_covers_the_digit_pad_and_the_exports() -> None:
    pyproject = tomllib.loads((Path(__file__).resolve().parents[1] / "pyproject.toml").read_text())
    extra = pyproject["project"]["optional-dependencies"]["playground"]
    names = {re.split(r"[<>=!~\[ ;]", requirement, maxsplit=1)[0].lower() for requirement in extra}
    # the server, its WebSocket and CSV upload; safetensors: the digit pad loads a run's model.safetensors
    # (chainrule.io.load) and the page's "safetensors" export writes one
    assert {"starlette", "uvicorn", "websockets", "python-multipart", "safetensors"} <= names
