"""The playground: watch backpropagation in the browser, every number from the real engine.

``chainrule playground`` serves a page (plain HTML, CSS and JavaScript modules from ``static/``) that trains
a small network on 2-D points in :class:`~chainrule.playground.session.Session` and draws what it does.
:mod:`~chainrule.playground.config` is the state a link holds, :mod:`~chainrule.playground.upload` reads a
CSV of points, :mod:`~chainrule.playground.export` writes the trained network as a script, JSON or
safetensors, and :mod:`~chainrule.playground.server` is the web app (Starlette; the ``playground`` extra).
"""

from chainrule.playground.config import Config
from chainrule.playground.session import Session

__all__ = ["Config", "Session"]
