"""The playground page in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

The server runs in a thread of this process, so the tests compare what the page shows with the engine's
own state (``app.state.store``). Screenshots go to ``test-artifacts/playground/`` (1280×800 and 420 wide).
They skip, with the reason, only where Playwright or Chromium is missing; CI installs both.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from chainrule.explain import trace

pytest.importorskip("starlette", reason="the playground extra (starlette, uvicorn) is not installed")
pytest.importorskip("uvicorn", reason="the playground extra (starlette, uvicorn) is not installed")
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright Python package is not installed")

CHROMIUM = os.environ.get("CHAINRULE_CHROMIUM", shutil.which("chromium") or "/usr/bin/chromium")
if not Path(CHROMIUM).exists():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)

from chainrule.playground.server import create_app  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "test-artifacts" / "playground"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def server() -> Iterator[tuple[str, Any]]:
    import uvicorn

    app = create_app()
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", ws_ping_interval=None))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert uv.started, "the playground server did not start"
    yield f"http://127.0.0.1:{port}", app.state.store
    uv.should_exit = True
    thread.join(timeout=10)
    listener.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_api.sync_playwright() as playwright:
        try:
            chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        except Exception as error:  # a Chromium that cannot start here (no display libraries, ...)
            pytest.skip(f"Chromium at {CHROMIUM} does not start: {str(error).splitlines()[0]}")
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any, server: tuple[str, Any]) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _open(page: Any, server: tuple[str, Any], query: str = "") -> Any:
    page.goto(f"{server[0]}/{query}")
    page.wait_for_selector("body[data-ready='1']", timeout=20_000)
    return server[1].sessions[page.evaluate("document.body.dataset.session")]


def _shot(page: Any, name: str, full_page: bool = False) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


def _wait_step(page: Any, step: int) -> None:
    page.wait_for_function(f"Number(document.body.dataset.step) === {step}", timeout=10_000)


def test_spirals_train_until_the_test_loss_is_low(page: Any, server: tuple[str, Any]) -> None:
    _open(page, server, "?data=xor&hidden=3&lr=0.03")
    page.click("#datasets button[data-name='spirals']")
    page.wait_for_function("location.search.includes('data=spirals')")
    page.click("#add-layer")
    page.wait_for_function("new URLSearchParams(location.search).get('hidden') === '3,2'")
    page.click("#network .width-control .add-neuron >> nth=0")  # 3 → 4 neurons
    page.wait_for_function("new URLSearchParams(location.search).get('hidden') === '4,2'")
    page.wait_for_function("document.body.dataset.step === '0'")
    session = server[1].sessions[page.evaluate("document.body.dataset.session")]
    assert session.config.dataset == "spirals" and session.config.hidden == (4, 2)
    start = float(page.evaluate("document.body.dataset.testLoss"))
    page.fill("#speed", "50")
    page.dispatch_event("#speed", "input")
    page.click("#play")
    page.wait_for_function("Number(document.body.dataset.testLoss) < 0.45", timeout=45_000, polling=200)
    page.click("#play")
    assert start > 1.0  # three classes at chance: log 3 ≈ 1.1
    page.wait_for_function("document.body.dataset.playing === '0'")
    _shot(page, "trained-1280x800")
    assert page.locator("#network .node").count() == 7 + 4 + 2 + 3


def test_the_panel_shows_explain_trace_for_the_clicked_weight(page: Any, server: tuple[str, Any]) -> None:
    session = _open(page, server, "?data=moons&hidden=4,3&opt=momentum&reg=l2&rate=0.01&seed=3")
    page.click("#step")
    _wait_step(page, 1)
    page.click("#step")
    _wait_step(page, 2)
    page.locator(".edge-hit[data-layer='2'][data-neuron='1'][data-source='3']").dispatch_event("click")
    page.wait_for_selector("#panel:not([hidden]) tr.sample")
    _shot(page, "panel-1280x800")
    body = page.locator("#panel-body")
    assert body.get_attribute("data-key") == "L2.w[1,3]"
    batch = session.next_batch()
    rows = page.locator("#panel-body tr.sample")
    assert rows.count() == len(batch) == 10
    for k, index in enumerate(batch):
        row = rows.nth(k)
        assert int(row.get_attribute("data-index")) == index
        record = trace(
            session.model, session.train_inputs[index], int(session.points.train_y[index]), loss="cross_entropy"
        )
        expected = next(r for r in record.backward_rows if r.key == "L2.w[1,3]")
        shown = [float(row.get_attribute(f"data-{name}")) for name in ("de-dout", "dout-dnet", "dnet-dparam", "grad")]
        assert shown == [expected.de_dout, expected.dout_dnet, expected.dnet_dparam, expected.grad]
        assert f"{expected.grad:.9g}" in row.inner_text()
    assert float(body.get_attribute("data-old")) == float(session.model[2].weight.data[1, 3])
    new = float(body.get_attribute("data-new"))
    page.click("#step")
    _wait_step(page, 3)
    assert float(session.model[2].weight.data[1, 3]) == new
    page.wait_for_function("document.getElementById('panel-body').dataset.step === '3'")  # follows the step


def test_a_lesson_link_gives_the_same_weights_and_reset_replays_them(page: Any, server: tuple[str, Any]) -> None:
    lesson = "?data=circles&features=x,y,x2,y2&hidden=5,2&act=family:logistic&seed=11&init=he"
    first = _open(page, server, lesson)
    weights = [p.data.copy() for p in first.model.parameters()]
    page.click("#step")
    _wait_step(page, 1)
    page.click("#reset")
    _wait_step(page, 0)
    assert all(np.array_equal(a, p.data) for a, p in zip(weights, first.model.parameters()))
    second = _open(page, server, lesson)
    assert second is not first
    assert all(np.array_equal(a, p.data) for a, p in zip(weights, second.model.parameters()))
    assert "x2" in page.evaluate("location.search") and page.locator("#feature-x2.off").count() == 0


def test_a_broken_link_gets_a_message_and_the_defaults(page: Any, server: tuple[str, Any]) -> None:
    session = _open(page, server, "?hidden=99&data=spirals")
    message = page.locator("#message")
    assert message.is_visible() and "hidden=99 must be an integer in [1, 8]" in message.inner_text()
    assert session.config.hidden == (6, 6)
    page.click("#step")
    _wait_step(page, 1)  # the page still works


def test_upload_csv_and_bad_csv(page: Any, server: tuple[str, Any], tmp_path: Path) -> None:
    _open(page, server, "?data=xor&hidden=3")
    good = tmp_path / "ring.csv"
    angles = np.linspace(0, 2 * np.pi, 80, endpoint=False)
    rows = [f"{np.cos(a) * r:.4f},{np.sin(a) * r:.4f},{int(r > 1)}" for a in angles for r in (0.5, 1.5)]
    good.write_text("x,y,label\n" + "\n".join(rows) + "\n")
    page.set_input_files("#csv", str(good))
    page.wait_for_function("location.search.includes('data=csv')")
    assert "Loaded 160 points (classification, 2 classes)" in page.locator("#message").inner_text()
    session = server[1].sessions[page.evaluate("document.body.dataset.session")]
    assert session.config.dataset == "csv" and len(session.points.train_y) + len(session.points.test_y) == 160
    bad = tmp_path / "words.csv"
    bad.write_text("x,y,label\n1,2,cat\n3,4,dog\n5,6,cat\n7,8,dog\n")
    page.set_input_files("#csv", str(bad))
    page.wait_for_function("document.getElementById('message').textContent.includes('is not a number')")
    assert "Could not use words.csv" in page.locator("#message").inner_text()
    page.click("#step")
    _wait_step(page, 1)  # still alive, still on the good upload
    assert "data=csv" in page.evaluate("location.search")


def test_export_the_script_and_run_it(page: Any, server: tuple[str, Any], tmp_path: Path) -> None:
    session = _open(page, server, "?data=gaussian&hidden=2&features=x,y,xy")
    session.step(25)
    page.click("#step")
    _wait_step(page, 26)
    with page.expect_download() as download:
        page.click("#export-script")
    path = tmp_path / "model.py"
    download.value.save_as(str(path))
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    run = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, env=env, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"test loss {session.losses()['test']:.9f}")


def test_screenshots_read_well_wide_and_narrow(page: Any, server: tuple[str, Any]) -> None:
    _open(page, server, "?data=spirals&hidden=6,6,4&features=x,y,sinx,siny")
    page.click("#step")
    _wait_step(page, 1)
    _shot(page, "page-1280x800")
    page.set_viewport_size({"width": 420, "height": 900})
    page.wait_for_timeout(300)
    _shot(page, "page-420-wide", full_page=True)
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0, f"the page is {overflow}px wider than a 420px window"


@pytest.mark.parametrize("model", ["mlp", "lstm"])
def test_the_digit_pad_shows_what_a_trained_run_sees(
    page: Any, server: tuple[str, Any], tmp_path: Path, model: str
) -> None:
    pytest.importorskip("sklearn", reason="the digits data set ships with scikit-learn")
    pytest.importorskip("safetensors", reason="runs are saved as safetensors")
    import base64

    from chainrule.cli import main
    from chainrule.playground.digits import predict_digit

    run = tmp_path / "digits"
    argv = ["train", "--model", model, "--epochs", "2", "--limit", "300", "--quiet", "--no-plots", "--out", str(run)]
    assert main(argv) == 0
    _open(page, server)
    page.fill("#run-path", str(run))
    page.locator("#digits").scroll_into_view_if_needed()
    box = page.locator("#pad").bounding_box()
    page.mouse.move(box["x"] + 60, box["y"] + 50)
    page.mouse.down()
    page.mouse.move(box["x"] + 160, box["y"] + 50, steps=6)
    page.mouse.move(box["x"] + 100, box["y"] + 190, steps=6)
    page.mouse.up()
    page.wait_for_function("(document.body.dataset.padWinner || '') !== ''", timeout=15_000)
    pixels = page.evaluate(
        "(() => { const c = document.getElementById('pad');"
        " const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
        " let s = ''; for (let i = 0; i < d.length; i += 8192) s += String.fromCharCode(...d.subarray(i, i + 8192));"
        " return btoa(s); })()"
    )
    image = np.frombuffer(base64.b64decode(pixels), np.uint8).reshape(224, 224, 4)
    expected = predict_digit(run, image)
    assert page.evaluate("document.body.dataset.padWinner") == str(expected["winner"])
    assert page.locator("#pad-layers .layer-row").count() == len(expected["layers"])
    page.locator("#digits").screenshot(path=str(ARTIFACTS / f"digit-pad-{model}.png"))
    page.fill("#run-path", str(tmp_path))
    page.dispatch_event("#run-path", "change")
    page.wait_for_selector("#pad-result .error")
    assert "is not an image classification run" in page.locator("#pad-result").inner_text()


def test_gradient_edges_and_monitor_warnings_on_their_layer(page: Any, server: tuple[str, Any]) -> None:
    session = _open(page, server, "?data=xor&hidden=8,8,8,8,8,8&act=sigmoid&opt=sgd&lr=0.01")
    session.step(9)
    page.click("#step")
    _wait_step(page, 10)
    page.check("input[name=edges][value=grad]")
    edge = page.locator("path.edge[data-layer='1'][data-neuron='2'][data-source='1']")
    assert float(edge.get_attribute("data-grad")) == pytest.approx(
        float(session.model[0].weight.grad.data[2, 1]), rel=1e-6
    )
    widths = {
        float(w) for w in page.eval_on_selector_all("path.edge", "es => es.map(e => e.getAttribute('stroke-width'))")
    }
    assert len(widths) > 10  # drawn by |∂L/∂w|, not all alike
    badge = page.locator(".layer-warning[data-layer='1']")
    assert "vanishing" in badge.inner_text()
    assert page.locator("#neuron-1-0.warn").count() == 1
    assert "vanishing gradients" in page.locator("#warnings").inner_text()
