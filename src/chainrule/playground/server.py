"""The playground's web app: the page, a JSON API over :class:`Session`, and a WebSocket that streams frames.

Routes (every error is JSON ``{"error": message}`` with status 400 for bad input, 404 for an unknown
session, 500 otherwise; never a traceback):

- ``GET /``: the page; ``/static/...``: its CSS and JavaScript modules.
- ``GET /api/options``: the choices (data sets, features, activations, ...) and the defaults.
- ``POST /api/session`` ``{"query": {...}}``: a new run from the URL's settings; returns its id, the
  settings as the URL should hold them, and the first frame with the points.
- ``GET /api/session/ID/frame``, ``POST .../step`` ``{"count": n}``, ``POST .../reset``.
- ``POST .../explain`` ``{"layer": l, "neuron": j, "source": i or null}``: one parameter's chain rule.
- ``GET .../export/script|json|safetensors``: the trained network.
- ``POST /api/upload`` (form field ``file``): a CSV of points; returns the id for ``data=csv&upload=ID``.
- ``GET /api/digits/runs``, ``POST /api/digits/predict`` ``{"run": DIR, "image": {width, height, data}}``:
  the digit pad (:mod:`chainrule.playground.digits`).
- ``WS .../stream``: send ``{"cmd": "play"|"pause"|"step"|"reset", "speed": n}``; receive frames,
  ``FPS`` a second while playing (``speed`` mini-batches per frame).

Starlette is imported here only: ``import chainrule.playground`` does not need the extra.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import secrets
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.errors import ArgumentError, ChainruleError, DataError
from chainrule.playground import config as cfg
from chainrule.playground.config import Config
from chainrule.playground.digits import find_runs, predict_digit, read_pad
from chainrule.playground.export import to_json, to_safetensors, to_script
from chainrule.playground.session import Session
from chainrule.playground.upload import MAX_BYTES, read_points_csv

__all__ = ["create_app", "FPS", "STATIC"]

FPS = 15
MAX_SPEED = 50
STATIC = Path(__file__).parent / "static"
_KEEP = 16  # sessions and uploads kept in memory (the oldest go first)


class _NotFound(ChainruleError):
    pass


class _Store:
    """The sessions and uploads of one app, the oldest dropped past ``_KEEP``.

    One lock: sessions are added in worker threads (``new_session`` runs in ``asyncio.to_thread``) while the
    event loop looks others up, and a lookup between its test and its read must not lose the session to an
    addition that drops the oldest (a ``KeyError`` instead of "reload the page").
    """

    def __init__(self) -> None:
        self.sessions: OrderedDict[str, Session] = OrderedDict()
        self.uploads: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def add_session(self, session: Session) -> str:
        key = secrets.token_hex(8)
        with self._lock:
            self.sessions[key] = session
            while len(self.sessions) > _KEEP:
                self.sessions.popitem(last=False)
        return key

    def session(self, key: str) -> Session:
        with self._lock:
            if key not in self.sessions:
                raise _NotFound(f"no session {key[:20]!r} (the server restarted or dropped it); reload the page")
            self.sessions.move_to_end(key)
            return self.sessions[key]

    def add_upload(self, data: tuple[np.ndarray, np.ndarray]) -> str:
        digest = hashlib.sha256(data[0].tobytes() + data[1].tobytes() + data[1].dtype.str.encode()).hexdigest()
        key = digest[:12]
        with self._lock:
            self.uploads[key] = data
            while len(self.uploads) > _KEEP:
                self.uploads.popitem(last=False)
        return key

    def upload(self, key: str) -> tuple[np.ndarray, np.ndarray] | None:
        with self._lock:
            return self.uploads.get(key)


def _json(value: Any, status: int = 200) -> Any:
    from starlette.responses import Response

    return Response(json.dumps(_finite(value), allow_nan=False), status_code=status, media_type="application/json")


def _error(error: BaseException) -> Any:
    if isinstance(error, _NotFound):
        return _json({"error": str(error)}, 404)
    if isinstance(error, (ChainruleError, ValueError, TypeError, KeyError)):
        return _json({"error": " ".join(str(error).split()) or type(error).__name__}, 400)
    return _json({"error": f"internal error ({type(error).__name__}: {error}); please report it"}, 500)


def _handler(work: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Run ``work(request)``; any exception becomes a JSON error (no traceback reaches the page)."""

    async def endpoint(request: Any) -> Any:
        try:
            return await work(request)
        except Exception as error:  # the page always gets JSON
            return _error(error)

    return endpoint


async def _body(request: Any) -> dict[str, Any]:
    raw = await request.body()
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise ArgumentError("the request body is not JSON") from None
    if not isinstance(value, dict):
        raise ArgumentError("the request body must be a JSON object")
    return value


def _options() -> dict[str, Any]:
    return {
        "datasets": list(cfg.DATASETS),
        "features": list(cfg.FEATURES),
        "activations": list(cfg.ACTIVATIONS),
        "losses": list(cfg.LOSSES),
        "optimizers": list(cfg.OPTIMIZERS),
        "regularization": list(cfg.REGULARIZATION),
        "inits": list(cfg.INITS),
        "max_layers": cfg.MAX_LAYERS,
        "max_width": cfg.MAX_WIDTH,
        "defaults": Config().to_query(),
        "fps": FPS,
        "max_speed": MAX_SPEED,
    }


def create_app(runs: list[str | Path] | None = None) -> Any:
    """The Starlette application (needs the ``playground`` extra: ``pip install 'chainrule[playground]'``).

    ``runs``: where the digit pad looks for ``chainrule train`` run directories (default ``./runs``).
    """
    from starlette.applications import Starlette
    from starlette.responses import FileResponse, Response
    from starlette.routing import Mount, Route, WebSocketRoute
    from starlette.staticfiles import StaticFiles
    from starlette.websockets import WebSocket, WebSocketDisconnect

    store = _Store()
    run_roots = [Path(p) for p in (runs if runs is not None else ["runs"])]

    def new_session(query: Any) -> tuple[str, Session]:
        if not isinstance(query, dict):
            raise ArgumentError("query must be an object of URL settings")
        config = Config.from_query(query)
        upload = store.upload(config.upload) if config.dataset == "csv" else None
        if config.dataset == "csv" and upload is None:
            raise DataError(f"the uploaded data {config.upload[:20]!r} is not on this server any more; upload it again")
        session = Session(config, upload)
        return store.add_session(session), session

    async def index(request: Any) -> Any:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-store"})

    async def options(request: Any) -> Any:
        return _json(_options())

    async def create(request: Any) -> Any:
        body = await _body(request)
        key, session = await asyncio.to_thread(new_session, body.get("query", {}))
        frame = await asyncio.to_thread(session.frame, True)
        return _json({"id": key, "config": session.config.to_query(), "frame": frame})

    async def frame(request: Any) -> Any:
        session = store.session(request.path_params["key"])
        return _json(await asyncio.to_thread(session.frame, True))

    async def step(request: Any) -> Any:
        session = store.session(request.path_params["key"])
        count = (await _body(request)).get("count", 1)
        await asyncio.to_thread(session.step, count)
        return _json(await asyncio.to_thread(session.frame))

    async def reset(request: Any) -> Any:
        session = store.session(request.path_params["key"])
        await asyncio.to_thread(session.reset)
        return _json(await asyncio.to_thread(session.frame))

    async def explain(request: Any) -> Any:
        session = store.session(request.path_params["key"])
        body = await _body(request)
        result = await asyncio.to_thread(session.explain, body.get("layer"), body.get("neuron"), body.get("source"))
        return _json(_finite(result))

    async def export(request: Any) -> Any:
        session = store.session(request.path_params["key"])
        kind = request.path_params["kind"]
        if kind == "script":
            body, media, name = to_script(session).encode(), "text/x-python", "playground_model.py"
        elif kind == "json":
            body, media, name = json.dumps(_finite(to_json(session))).encode(), "application/json", "weights.json"
        elif kind == "safetensors":
            try:
                body = to_safetensors(session)
            except ImportError:
                raise ArgumentError("safetensors is not installed: pip install 'chainrule[io]'") from None
            media, name = "application/octet-stream", "weights.safetensors"
        else:
            raise ArgumentError(f"unknown export {kind[:20]!r}; choose script, json or safetensors")
        return Response(body, media_type=media, headers={"Content-Disposition": f'attachment; filename="{name}"'})

    async def upload(request: Any) -> Any:
        length = int(request.headers.get("content-length") or 0)
        if length > MAX_BYTES + 4096:  # refused before reading: a form adds a little to the file
            raise DataError(f"CSV: the upload has {length:,} bytes; the playground takes at most {MAX_BYTES:,}")
        content_type = request.headers.get("content-type", "")
        if content_type.startswith("multipart/form-data"):
            form = await request.form()
            item = form.get("file")
            if item is None or isinstance(item, str):
                raise DataError("CSV: no file in the form field 'file'")
            raw = await item.read()
        else:
            raw = await request.body()
        points, labels = await asyncio.to_thread(read_points_csv, raw)
        key = store.add_upload((points, labels))
        task = "regression" if labels.dtype.kind == "f" else "classification"
        classes = 0 if task == "regression" else int(labels.max()) + 1
        return _json({"id": key, "rows": len(labels), "task": task, "classes": classes})

    async def digit_runs(request: Any) -> Any:
        found = await asyncio.to_thread(find_runs, list(run_roots))
        return _json({"runs": found, "roots": [str(p) for p in run_roots]})

    async def digit_predict(request: Any) -> Any:
        body = await _body(request)
        run = body.get("run")
        if not isinstance(run, str) or not run.strip():
            raise ArgumentError("digit pad: choose a run directory (written by 'chainrule train --out DIR')")
        image = read_pad(body.get("image"))
        return _json(await asyncio.to_thread(predict_digit, run.strip(), image))

    async def stream(websocket: WebSocket) -> None:
        await websocket.accept()
        key = websocket.path_params["key"]
        try:
            session = store.session(key)
        except _NotFound:
            await websocket.send_text(json.dumps({"type": "error", "message": f"no session {key[:20]!r}"}))
            await websocket.close()
            return
        state = {"playing": False, "speed": 1}
        wake = asyncio.Event()

        async def receive() -> None:
            while True:
                message = await websocket.receive_json()
                command = message.get("cmd") if isinstance(message, dict) else None
                speed = message.get("speed") if isinstance(message, dict) else None
                if isinstance(speed, int) and not isinstance(speed, bool):
                    state["speed"] = max(1, min(MAX_SPEED, speed))
                if command == "play":
                    state["playing"] = True
                elif command == "pause":
                    state["playing"] = False
                elif command in ("step", "reset"):
                    state["playing"] = False
                    state["pending"] = command
                wake.set()

        async def send(payload: dict[str, Any]) -> None:
            await websocket.send_text(json.dumps(_finite(payload), allow_nan=False))

        receiver = asyncio.create_task(receive())
        try:
            while not receiver.done():
                pending = state.pop("pending", None)
                if pending == "reset":
                    await asyncio.to_thread(session.reset)
                elif pending == "step":
                    await asyncio.to_thread(session.step, 1)
                elif not state["playing"]:
                    wake.clear()
                    waiter = asyncio.create_task(wake.wait())
                    await asyncio.wait([receiver, waiter], return_when="FIRST_COMPLETED")
                    waiter.cancel()  # when the page went away, nobody will set the event
                    continue
                started = asyncio.get_running_loop().time()
                if not pending:
                    await asyncio.to_thread(session.step, int(state["speed"]))
                frame = await asyncio.to_thread(session.frame)
                await send({"type": "frame", "playing": state["playing"], **frame})
                elapsed = asyncio.get_running_loop().time() - started
                await asyncio.sleep(max(0.0, 1.0 / FPS - elapsed))
        except (WebSocketDisconnect, RuntimeError):
            pass
        except Exception as error:  # a training error reaches the page as a message, and playing stops
            try:
                await send({"type": "error", "message": " ".join(str(error).split())})
            except Exception:
                pass
        finally:
            receiver.cancel()

    routes = [
        Route("/", index),
        Route("/api/options", _handler(options)),
        Route("/api/session", _handler(create), methods=["POST"]),
        Route("/api/session/{key}/frame", _handler(frame)),
        Route("/api/session/{key}/step", _handler(step), methods=["POST"]),
        Route("/api/session/{key}/reset", _handler(reset), methods=["POST"]),
        Route("/api/session/{key}/explain", _handler(explain), methods=["POST"]),
        Route("/api/session/{key}/export/{kind}", _handler(export)),
        Route("/api/upload", _handler(upload), methods=["POST"]),
        Route("/api/digits/runs", _handler(digit_runs)),
        Route("/api/digits/predict", _handler(digit_predict), methods=["POST"]),
        WebSocketRoute("/api/session/{key}/stream", stream),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    app = Starlette(routes=routes)
    app.state.store = store
    return app


def _finite(value: Any) -> Any:
    """NaN and infinities as strings, so the JSON stays strict."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def serve(
    host: str = "127.0.0.1", port: int = 0, open_browser: bool = True, runs: list[str | Path] | None = None
) -> None:
    """Run the app with uvicorn on ``host:port`` (0: a free port), print the address, open the browser."""
    import socket
    import webbrowser

    import uvicorn

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        raise ArgumentError(f"playground: cannot listen on {host}:{port} ({error.strerror or error})") from None
    address = f"http://{host}:{listener.getsockname()[1]}/"
    print(f"chainrule playground: {address}  (Ctrl-C to stop)", flush=True)
    if open_browser:
        webbrowser.open(address)
    server = uvicorn.Server(uvicorn.Config(create_app(runs), log_level="warning", ws_ping_interval=None))
    server.run(sockets=[listener])
