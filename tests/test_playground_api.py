"""The playground's server API without a browser (Starlette's TestClient), and the engine work behind it."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import chainrule as cr
from chainrule import nn
from chainrule.data import gaussian
from chainrule.explain import trace
from chainrule.playground import Config, Session
from chainrule.playground.upload import read_points_csv

pytest.importorskip("starlette", reason="the playground extra (starlette) is not installed")
pytest.importorskip("httpx", reason="httpx (for Starlette's TestClient) is not installed")

from starlette.testclient import TestClient

from chainrule.playground.server import create_app

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def client() -> TestClient:
    return TestClient(create_app())


def _create(client: TestClient, **query: str) -> dict:
    response = client.post("/api/session", json={"query": query})
    assert response.status_code == 200, response.text
    return response.json()


def _session(client: TestClient, key: str) -> Session:
    return client.app.state.store.sessions[key]  # type: ignore[attr-defined]


def test_options_name_every_toy_set_feature_and_the_slope_one_family(client: TestClient) -> None:
    options = client.get("/api/options").json()
    assert {"xor", "moons", "circles", "spirals", "blobs", "gaussian", "regression"} <= set(options["datasets"])
    assert options["features"] == ["x", "y", "x2", "y2", "xy", "sinx", "siny"]
    assert "family:logistic" in options["activations"] and "relu" in options["activations"]
    assert options["optimizers"] == ["sgd", "momentum", "adam"]


def test_a_session_trains_and_its_frame_holds_every_view(client: TestClient) -> None:
    created = _create(client, data="xor", hidden="4", features="x,y,xy")
    key, frame = created["id"], created["frame"]
    assert created["config"]["data"] == "xor" and frame["step"] == 0
    assert len(frame["points"]["train"]) == 200 and frame["points"]["task"] == "classification"
    assert frame["network"]["widths"] == [3, 4, 2]
    assert [len(layer) for layer in frame["neurons"]] == [3, 4, 2]
    output = frame["output"]
    assert len(__import__("base64").b64decode(output["data"])) == output["size"] ** 2 * 2
    before = frame["loss"]["train"]
    after = client.post(f"/api/session/{key}/step", json={"count": 300}).json()
    assert after["step"] == 300 and after["loss"]["train"] < 0.5 * before
    assert all(layer["grad"] is not None for layer in after["network"]["layers"])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"hidden": "9"}, "hidden=9 must be an integer in [1, 8]"),
        ({"hidden": "1,1,1,1,1,1,1,1,1"}, "at most 8"),
        ({"data": "mnist"}, "data='mnist' is not one of"),
        ({"lr": "fast"}, "lr='fast' is not a valid float"),
        ({"lr": "nan"}, "lr=nan must be a number"),
        ({"features": ""}, "features must be a non-empty list"),
        ({"colour": "red"}, "unknown setting 'colour'"),
        ({"data": "csv", "upload": "0123"}, "not on this server any more"),
        ({"batch": "64", "n": "20"}, "larger than the 10 training points"),
    ],
)
def test_a_broken_state_is_a_json_error_naming_the_setting(client: TestClient, query: dict, expected: str) -> None:
    response = client.post("/api/session", json={"query": query})
    assert response.status_code == 400
    assert expected in response.json()["error"]


def test_bad_requests_are_json_errors(client: TestClient) -> None:
    assert client.get("/api/session/nope/frame").status_code == 404
    assert "reload the page" in client.get("/api/session/nope/frame").json()["error"]
    key = _create(client, data="xor", hidden="2")["id"]
    assert (
        client.post(f"/api/session/{key}/step", content=b"{not json").json()["error"] == "the request body is not JSON"
    )
    assert "step count" in client.post(f"/api/session/{key}/step", json={"count": -1}).json()["error"]
    response = client.post(f"/api/session/{key}/explain", json={"layer": 5, "neuron": 0, "source": 0})
    assert response.status_code == 400 and "layer must be an integer in [1, 2]" in response.json()["error"]
    assert "unknown export" in client.get(f"/api/session/{key}/export/pickle").json()["error"]


def _batch_loss(session: Session, model: nn.Module, batch: np.ndarray) -> float:
    with cr.no_grad():
        return float(session._loss(model, session.train_inputs[batch], session.points.train_y[batch], True).data)


@pytest.mark.parametrize(
    ("optimizer", "regularization", "loss", "activation"),
    [
        ("sgd", "none", "cross_entropy", "tanh"),
        ("momentum", "l2", "mse", "family:erf"),
        ("adam", "l1", "cross_entropy", "relu"),
    ],
)
def test_explain_is_trace_per_point_and_its_mean_is_the_batch_gradient(
    client: TestClient, optimizer: str, regularization: str, loss: str, activation: str
) -> None:
    key = _create(
        client, data="circles", hidden="3,2", opt=optimizer, reg=regularization, rate="0.01", loss=loss, act=activation
    )["id"]
    client.post(f"/api/session/{key}/step", json={"count": 7})
    session = _session(client, key)
    result = client.post(f"/api/session/{key}/explain", json={"layer": 2, "neuron": 1, "source": 2}).json()
    assert result["key"] == "L2.w[1,2]" and len(result["samples"]) == 10
    batch = session.next_batch()
    assert result["batch"] == batch.tolist()

    # Each point's factors are explain.trace's, on the session's model as it is.
    for sample, index in zip(result["samples"], batch):
        target = session._targets(session.points.train_y[index : index + 1]).data[0]
        row = next(
            r
            for r in trace(session.model, session.train_inputs[index], target, loss=loss, lr=0.1).backward_rows
            if r.key == "L2.w[1,2]"
        )
        assert (sample["de_dout"], sample["dout_dnet"], sample["dnet_dparam"], sample["grad"]) == (
            row.de_dout,
            row.dout_dnet,
            row.dnet_dparam,
            row.grad,
        )
        assert sample["grad"] == pytest.approx(
            sample["de_dout"] * sample["dout_dnet"] * sample["dnet_dparam"], rel=1e-12
        )

    # Their mean plus the penalty's gradient is the batch gradient: check it with central differences.
    model = copy.deepcopy(session.model)
    weight = model[2].weight
    step = 1e-6
    weight.data[1, 2] += step
    up = _batch_loss(session, model, batch)
    weight.data[1, 2] -= 2 * step
    down = _batch_loss(session, model, batch)
    assert result["grad"] == pytest.approx((up - down) / (2 * step), rel=1e-5, abs=1e-9)
    assert result["data_grad"] + result["penalty"]["grad"] == pytest.approx(result["grad"], rel=1e-9, abs=1e-15)
    assert (result["penalty"]["grad"] != 0) == (regularization != "none")

    # The update shown is the one the next step makes.
    old = float(session.model[2].weight.data[1, 2])
    assert result["old"] == old
    client.post(f"/api/session/{key}/step", json={"count": 1})
    assert float(session.model[2].weight.data[1, 2]) == result["new"] != old
    if optimizer == "sgd":
        assert result["new"] == pytest.approx(old - 0.03 * result["grad"], rel=1e-12)


@pytest.mark.parametrize("query", [{"data": "spirals", "hidden": "3,2"}, {"data": "xor", "hidden": "2", "loss": "mse"}])
def test_the_panel_numbers_are_what_chainrule_explain_prints(
    client: TestClient, tmp_path: Path, capsys: pytest.CaptureFixture[str], query: dict
) -> None:
    import shlex

    from chainrule.cli import main

    key = _create(client, **query)["id"]
    client.post(f"/api/session/{key}/step", json={"count": 5})
    (tmp_path / "weights.json").write_bytes(client.get(f"/api/session/{key}/export/json").content)
    result = client.post(f"/api/session/{key}/explain", json={"layer": 1, "neuron": 1, "source": 0}).json()
    argv = shlex.split(result["command"])
    assert argv[0] == "chainrule"
    argv[argv.index("weights.json")] = str(tmp_path / "weights.json")
    capsys.readouterr()
    assert main([*argv[1:], "--format", "json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    row = next(r for r in printed["backward"] if r["key"] == "L1.w[1,0]")
    first = result["samples"][0]
    assert [row[k] for k in ("de_dout", "dout_dnet", "dnet_dparam", "grad")] == [
        first[k] for k in ("de_dout", "dout_dnet", "dnet_dparam", "grad")
    ]


def test_explain_a_bias(client: TestClient) -> None:
    key = _create(client, data="regression", hidden="2")["id"]
    result = client.post(f"/api/session/{key}/explain", json={"layer": 1, "neuron": 0, "source": None}).json()
    assert result["kind"] == "bias" and result["loss_name"] == "mse"
    assert all(sample["dnet_dparam"] == 1.0 for sample in result["samples"])
    assert all(sample["paths"] == 1 for sample in result["samples"])  # feeds the one output


def test_reset_and_the_same_link_replay_the_same_starting_weights(client: TestClient) -> None:
    query = {"data": "moons", "hidden": "5,3", "seed": "7", "init": "he"}
    first = _create(client, **query)
    second = _create(client, **query)
    other = _create(client, **{**query, "seed": "8"})
    weights = first["frame"]["network"]["layers"]
    assert second["frame"]["network"]["layers"] == weights
    assert other["frame"]["network"]["layers"] != weights
    key = first["id"]
    trained = client.post(f"/api/session/{key}/step", json={"count": 20}).json()
    assert trained["network"]["layers"][0]["weight"] != weights[0]["weight"]
    reset = client.post(f"/api/session/{key}/reset").json()
    assert [layer["weight"] for layer in reset["network"]["layers"]] == [layer["weight"] for layer in weights]
    assert reset["step"] == 0
    # ... and the same batches: twenty steps after a reset land on the same weights.
    again = client.post(f"/api/session/{key}/step", json={"count": 20}).json()
    assert again["network"]["layers"] == trained["network"]["layers"]


def test_config_round_trips_through_the_url() -> None:
    config = Config(dataset="blobs", hidden=(8, 1), features=("x", "sinx"), activation="family:logistic", lr=0.3)
    assert Config.from_query(config.to_query()) == config
    assert Config.from_query(json.loads(json.dumps(config.to_query()))) == config


def test_upload_a_csv_and_train_on_it(client: TestClient) -> None:
    rows = ["x,y,label"] + [
        f"{x:.3f},{y:.3f},{int(x * y > 0)}" for x, y in np.random.default_rng(0).uniform(-1, 1, (120, 2))
    ]
    response = client.post("/api/upload", files={"file": ("points.csv", "\n".join(rows).encode(), "text/csv")})
    assert response.status_code == 200, response.text
    uploaded = response.json()
    assert uploaded["rows"] == 120 and uploaded["classes"] == 2
    created = _create(client, data="csv", upload=uploaded["id"], hidden="4", features="x,y,xy")
    assert created["config"]["upload"] == uploaded["id"]
    assert len(created["frame"]["points"]["train"]) + len(created["frame"]["points"]["test"]) == 120
    regression = client.post("/api/upload", content=b"0,0,0.5\n1,0,1.5\n0,1,2.5\n1,1,0.25\n")
    assert regression.json()["task"] == "regression"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"x,y,label\n0,0,cat\n1,1,dog\n2,2,cat\n3,3,dog\n", "'cat' is not a number"),
        (b"0,0,0\n1,nan,1\n2,2,0\n3,3,1\n", "is not finite"),
        (b"0,0,1\n1,1,1\n2,2,1\n3,3,1\n", "classification needs at least 2 classes"),
        (b"0,0,0\n1,1\n2,2,0\n3,3,1\n", "expected 3 values"),
        (b"0,0,0\n1,1,1\n", "need at least 4 points"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\xff\xfe", "not UTF-8 text"),
        (b"0,0,0\n" * 1_000_000, "at most 1,000,000"),
        ("\n".join(f"{i},{i},{i % 2}" for i in range(6000)).encode(), "at most 5,000 points"),
    ],
)
def test_a_bad_csv_gets_a_clear_message(client: TestClient, content: bytes, expected: str) -> None:
    response = client.post("/api/upload", files={"file": ("bad.csv", content, "text/csv")})
    assert response.status_code == 400
    assert expected in response.json()["error"]


def test_exports_rebuild_the_trained_network(client: TestClient, tmp_path: Path) -> None:
    key = _create(client, data="spirals", hidden="4,3", act="family:arctan", features="x,y,sinx")["id"]
    frame = client.post(f"/api/session/{key}/step", json={"count": 30}).json()
    script = tmp_path / "model.py"
    script.write_bytes(client.get(f"/api/session/{key}/export/script").content)
    run = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, env={"PYTHONPATH": str(SRC)}, timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith(f"test loss {frame['loss']['test']:.9f}")
    weights = client.get(f"/api/session/{key}/export/json").json()
    assert weights["layers"][0]["weight"] == _session(client, key).model[0].weight.data.tolist()
    safetensors = pytest.importorskip("safetensors.numpy")
    arrays = safetensors.load(client.get(f"/api/session/{key}/export/safetensors").content)
    np.testing.assert_array_equal(arrays["2.weight"], _session(client, key).model[2].weight.data)


def test_the_stream_plays_pauses_and_steps(client: TestClient) -> None:
    key = _create(client, data="xor", hidden="2")["id"]
    with client.websocket_connect(f"/api/session/{key}/stream") as socket:
        socket.send_json({"cmd": "step"})
        assert json.loads(socket.receive_text())["step"] == 1
        socket.send_json({"cmd": "play", "speed": 3})
        steps = [json.loads(socket.receive_text())["step"] for _ in range(3)]
        assert steps == [4, 7, 10]
        socket.send_json({"cmd": "reset"})
        while (frame := json.loads(socket.receive_text()))["step"] != 0:
            pass
        assert frame["playing"] is False


def test_the_monitor_warnings_land_on_their_layer() -> None:
    session = Session(Config(dataset="xor", hidden=(8, 8, 8, 8, 8, 8), activation="sigmoid", lr=0.01, optimizer="sgd"))
    session.step(10)
    warnings = session.frame()["warnings"]
    assert warnings and {w["kind"] for w in warnings} <= {"vanishing", "saturated", "dead", "exploding", "nonfinite"}
    assert any(w["kind"] == "vanishing" and w["layer"] == 1 for w in warnings)


def test_trace_ignores_gradients_left_on_the_model() -> None:
    model = nn.Sequential(nn.Linear(2, 2, dtype=np.float64), nn.Tanh(), nn.Linear(2, 1, dtype=np.float64))
    clean = trace(model, [0.5, -1.0], [0.2]).backward_rows
    model(cr.tensor(np.ones((3, 2)))).sum().backward()  # a training step's gradient left behind
    assert trace(model, [0.5, -1.0], [0.2]).backward_rows == clean


def test_gaussian_and_the_slope_one_family() -> None:
    train, _, info = gaussian(n_samples=200, noise=0.3, seed=3)
    x, y = train.arrays
    assert info.num_classes == 2 and x.shape == (160, 2) and abs(y.mean() - 0.5) < 0.1
    assert np.allclose(x[y == 1].mean(axis=0), [1, 1], atol=0.15) and np.allclose(
        x[y == 0].mean(axis=0), [-1, -1], atol=0.15
    )
    for name in ("logistic", "arctan", "erf", "algebraic", "gudermannian"):
        point = cr.tensor([0.0], requires_grad=True, dtype=np.float64)
        nn.SigmoidFamily(name)(point).sum().backward()
        assert point.grad.data[0] == pytest.approx(1.0), name


def test_read_points_csv_renumbers_classes() -> None:
    points, labels = read_points_csv("1,2,5\n3,4,7\n5,6,5\n7,8,7\n")
    assert labels.tolist() == [0, 1, 0, 1] and points.dtype == np.float64


def test_the_command_says_what_to_install_without_the_extra(monkeypatch, capsys) -> None:
    from chainrule.cli import main

    monkeypatch.setitem(sys.modules, "uvicorn", None)
    assert main(["playground", "--no-browser"]) == 1
    assert "install chainrule[playground]" in capsys.readouterr().err


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory) -> Path:
    pytest.importorskip("sklearn", reason="the digits data set ships with scikit-learn")
    pytest.importorskip("safetensors", reason="runs are saved as safetensors")
    from chainrule.cli import main

    out = tmp_path_factory.mktemp("runs") / "digits"
    assert main(["train", "--epochs", "2", "--limit", "300", "--quiet", "--no-plots", "--out", str(out)]) == 0
    return out


def _one(width: int = 64) -> dict:
    """A dark vertical stroke on white, as RGBA pixels from the page."""
    pixels = np.full((width, width, 4), 255, np.uint8)
    pixels[8:56, 28:36, :3] = 0
    return {"width": width, "height": width, "data": __import__("base64").b64encode(pixels.tobytes()).decode()}


def test_the_digit_pad_lists_runs_and_traces_the_winner(digits_run: Path) -> None:
    client = TestClient(create_app(runs=[digits_run.parent]))
    runs = client.get("/api/digits/runs").json()["runs"]
    assert [r["path"] for r in runs] == [str(digits_run)] and runs[0]["data"] == "digits"
    result = client.post("/api/digits/predict", json={"run": str(digits_run), "image": _one()}).json()
    assert result["input"]["width"] == result["input"]["height"] == 8
    probabilities = [c["probability"] for c in result["classes"]]
    assert probabilities == sorted(probabilities, reverse=True) and sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    assert result["classes"][0]["index"] == result["winner"]
    # The layer feeding the output: each unit's contribution is exactly W[c, j] · a_j.
    from chainrule.train import load_run

    model, _ = load_run(digits_run)
    last = model[-1]
    hidden = result["layers"][-2]
    for top in hidden["top"]:
        expected = float(last.weight.data[result["winner"], top["unit"]]) * top["value"]
        assert top["contribution"] == pytest.approx(expected, rel=1e-5, abs=1e-7)
    assert hidden["top"][0]["contribution"] >= hidden["top"][-1]["contribution"]


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"image": _one()}, "choose a run directory"),
        ({"run": "/no/such/run", "image": _one()}, "is not a directory"),
        ({"run": ".", "image": _one()}, "is not an image classification run"),
        ({"run": "RUN", "image": {"width": 64, "height": 64, "data": "***"}}, "not base64"),
        ({"run": "RUN", "image": {"width": 5000, "height": 1, "data": ""}}, "width must be an integer"),
        ({"run": "RUN", "image": {"width": 2, "height": 2, "data": "AAAA"}}, "expected 2×2×4 RGBA bytes"),
        (
            {
                "run": "RUN",
                "image": {**_one(), "data": __import__("base64").b64encode(bytes([255]) * 64 * 64 * 4).decode()},
            },
            "blank",
        ),
    ],
)
def test_the_digit_pad_refuses_bad_input_with_a_message(digits_run: Path, body: dict, expected: str) -> None:
    client = TestClient(create_app(runs=[]))
    if body.get("run") == "RUN":
        body = {**body, "run": str(digits_run)}
    response = client.post("/api/digits/predict", json=body)
    assert response.status_code == 400
    assert expected in response.json()["error"]


def test_explain_leaves_the_monitor_of_the_next_step_as_it_was() -> None:
    """explain() steps a deep copy of the model; the copy's hooks were the session monitor's, which added the
    copy's output gradients to the next step's norms (about 14 times too large on the default network)."""

    def next_step_records(explain: bool) -> list[dict]:
        session = Session(Config.from_query({}))
        session.step(1)
        if explain:
            session.explain(1, 0, 0)
        session.step(1)
        return [r.get("output_grad_norm") for r in session.monitor.records if r["step"] == 2]

    assert next_step_records(True) == next_step_records(False)


def test_the_digit_pad_reads_a_recurrent_run(tmp_path: Path) -> None:
    """A run of `chainrule train --model lstm` (a SequenceClassifier, not a Sequential): the pad traces the LSTM's
    outputs and the linear head through forward hooks; the head's inputs contribute W[c, j] · h_j at the last step."""
    pytest.importorskip("sklearn", reason="the digits data set ships with scikit-learn")
    from chainrule.cli import main
    from chainrule.train import load_run

    out = tmp_path / "lstm"
    argv = ["train", "--model", "lstm", "--epochs", "1", "--limit", "200", "--quiet", "--no-plots", "--out", str(out)]
    assert main(argv) == 0
    result = TestClient(create_app(runs=[tmp_path])).post(
        "/api/digits/predict", json={"run": str(out), "image": _one()}
    )
    assert result.status_code == 200, result.text
    body = result.json()
    assert [layer["name"].split(" ", 1)[1] for layer in body["layers"]] == [
        "LSTM (rnn), last of 8 steps",  # the rows of the 8×8 digit; the head reads the last step's outputs
        "Linear (head)",
    ]
    model, _ = load_run(out)
    assert body["layers"][0]["shape"] == [model.head.weight.shape[1]]
    for top in body["layers"][0]["top"]:
        expected = float(model.head.weight.data[body["winner"], top["unit"]]) * top["value"]
        assert top["contribution"] == pytest.approx(expected, rel=1e-5, abs=1e-7)
