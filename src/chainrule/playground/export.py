"""The trained playground network as a Python script, as JSON weights and as safetensors.

The script rebuilds the same ``nn.Sequential`` in chainrule, loads the weights (written into it as
literals, at full precision), recomputes the input features of the test points and prints the test loss,
which equals the page's.

Examples
--------
>>> from chainrule.playground import Config, Session
>>> from chainrule.playground.export import to_json, to_script
>>> session = Session(Config(dataset="xor", hidden=(3,), n_samples=40))
>>> sorted(to_json(session))
['config', 'features', 'layers', 'scale', 'state_dict', 'task']
>>> "load_state_dict" in to_script(session)
True
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from chainrule import nn
from chainrule.playground.session import FEATURE_FORMULAS, Session, bias_of

__all__ = ["to_json", "to_script", "to_safetensors"]


def _state(session: Session) -> dict[str, np.ndarray]:
    return {key: np.array(value.data, dtype=np.float64) for key, value in session.model.state_dict().items()}


def to_json(session: Session) -> dict[str, Any]:
    """Config, features, the input scale and every weight and bias (nested lists, full precision)."""
    state = _state(session)
    layers = [{"weight": linear.weight.data.tolist(), "bias": bias_of(linear).tolist()} for linear in session.linears()]
    return {
        "config": session.config.to_query(),
        "task": session.task,
        "features": list(session.config.features),
        "scale": session.points.scale,
        "layers": layers,
        "state_dict": {key: value.tolist() for key, value in state.items()},
    }


def to_safetensors(session: Session) -> bytes:
    """The model's ``state_dict`` (float64) in the safetensors format, with the config in its metadata."""
    from safetensors.numpy import save

    metadata = {"format": "chainrule-playground", "config": json.dumps(session.config.to_query())}
    return bytes(save(_state(session), metadata=metadata))


def _module_code(module: nn.Module) -> str:
    if isinstance(module, nn.Linear):
        return f"nn.Linear({module.in_features}, {module.out_features}, dtype=np.float64)"
    if isinstance(module, nn.SigmoidFamily):
        return f"nn.SigmoidFamily({module.name!r})"
    return f"nn.{type(module).__name__}()"


def to_script(session: Session) -> str:
    """A standalone Python script that rebuilds the network, loads the weights and prints the test loss."""
    config = session.config
    modules = ",\n    ".join(_module_code(m) for m in session.model)
    state = {key: value.tolist() for key, value in _state(session).items()}
    features = ",\n    ".join(f"{name!r}: lambda x, y: {FEATURE_FORMULAS[name]}" for name in config.features)
    test_points = np.asarray(session.points.test_x / session.points.scale).tolist()
    test_targets = session.points.test_y.tolist()
    query = "&".join(f"{k}={v}" for k, v in config.to_query().items())
    if session.loss_name == "cross_entropy":
        loss_line = "loss = nn.functional.cross_entropy(out, cr.tensor(np.array(TEST_TARGETS)))"
    elif session.task == "classification":
        loss_line = f"loss = nn.functional.mse_loss(out, cr.tensor(np.eye({session.points.num_classes})[TEST_TARGETS]))"
    else:
        loss_line = "loss = nn.functional.mse_loss(out, cr.tensor(np.array(TEST_TARGETS)))"
    return f'''"""A network trained in the chainrule playground, rebuilt in chainrule with its trained weights.

Playground settings: ?{query}
Trained for {session.step_count} mini-batches. Run: python this_file.py
"""

import numpy as np

import chainrule as cr
from chainrule import nn

# The points are scaled by SCALE before the features are computed (the playground shows them at ±3).
SCALE = {session.points.scale!r}
FEATURES = {{
    {features},
}}

model = nn.Sequential(
    {modules},
)
WEIGHTS = {json.dumps(state)}
model.load_state_dict({{key: np.array(value) for key, value in WEIGHTS.items()}})


def features(points):
    """Raw 2-D points (N, 2) to the network's inputs (N, {len(config.features)})."""
    x, y = SCALE * points[:, 0], SCALE * points[:, 1]
    return np.stack([f(x, y) for f in FEATURES.values()], axis=1)


TEST_POINTS = {json.dumps(test_points)}
TEST_TARGETS = {json.dumps(test_targets)}

if __name__ == "__main__":
    with cr.no_grad():
        out = model(cr.tensor(features(np.array(TEST_POINTS))))
        {loss_line}
    print(f"test loss {{float(loss.data):.9f}} on {{len(TEST_POINTS)}} points")
'''
