"""The digit pad: a drawn or loaded image through a trained ``chainrule train`` run, every layer shown.

The image is made into a sample exactly as ``chainrule predict`` makes one
(:func:`chainrule.data.prepare_image`: ink, crop, square, area-average, centre), run through the run's model
module by module, and the winning class's logit :math:`z_c` is traced back: for every layer's output
:math:`a` the engine gives :math:`\\partial z_c/\\partial a`, and the contribution of unit :math:`j` is
:math:`a_j\\,\\partial z_c/\\partial a_j` (exactly :math:`W_{cj} a_j` for the layer that feeds the output;
a first-order share further back). The same product on the input pixels is the saliency image.

Examples
--------
>>> from chainrule.playground.digits import read_pad
>>> read_pad({"width": 2, "height": 1, "data": "AAAA//////8="}).shape  # a black and a white pixel
(1, 2, 4)
"""

from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path
from typing import Any

import numpy as np

from chainrule import autograd, nn
from chainrule.data import prepare_image
from chainrule.errors import CheckpointError, DataError
from chainrule.tensor import Tensor

__all__ = ["find_runs", "read_pad", "predict_digit", "MAX_SIDE"]

MAX_SIDE = 1024
_SHOWN_UNITS = 512  # units drawn per layer (a conv layer's maps are cut off after that many values)
_TOP = 5


def _run_info(run_dir: Path) -> dict[str, Any] | None:
    """The run's data description if it is an image classification run, else None."""
    from chainrule.train.runs import _read_config

    if not (run_dir / "config.json").is_file() or not (run_dir / "model.safetensors").is_file():
        return None
    try:
        config = _read_config(run_dir / "config.json")
    except CheckpointError:
        return None
    data = config["data"]
    shape = tuple(data["input_shape"])
    if data["task"] != "classification" or not (len(shape) == 2 or (len(shape) == 3 and shape[0] == 1)):
        return None
    return {"path": str(run_dir), "data": data["name"], "model": config["model"]["model"], "shape": list(shape)}


def find_runs(roots: list[str | os.PathLike[str]]) -> list[dict[str, Any]]:
    """Image classification runs in ``roots`` and their subdirectories (one level), newest first."""
    found = []
    for root in roots:
        root = Path(root)
        if not root.is_dir():
            continue
        for candidate in [root, *sorted(p for p in root.iterdir() if p.is_dir())]:
            info = _run_info(candidate)
            if info is not None:
                info["mtime"] = (candidate / "model.safetensors").stat().st_mtime
                found.append(info)
    return sorted(found, key=lambda r: -r["mtime"])


def read_pad(image: Any) -> np.ndarray:
    """The page's pixels ``{"width", "height", "data": base64 RGBA bytes}`` as an ``(H, W, 4)`` uint8 array."""
    if not isinstance(image, dict):
        raise DataError("digit pad: image must be an object with width, height and data")
    width, height = image.get("width"), image.get("height")
    for name, value in (("width", width), ("height", height)):
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_SIDE:
            raise DataError(f"digit pad: image {name} must be an integer in [1, {MAX_SIDE}], got {value!r}")
    try:
        raw = base64.b64decode(str(image.get("data", "")), validate=True)
    except (binascii.Error, ValueError):
        raise DataError("digit pad: image data is not base64") from None
    assert isinstance(width, int) and isinstance(height, int)  # for mypy; checked above
    if len(raw) != width * height * 4:
        raise DataError(f"digit pad: expected {width}×{height}×4 RGBA bytes, got {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8).reshape(height, width, 4)


def _is_activation(module: nn.Module) -> bool:
    """An elementwise map without parameters (ReLU, Tanh, ...), whose output replaces the layer's net."""
    shaping = (nn.Flatten, nn.Dropout, nn.MaxPool2d, nn.AvgPool2d, nn.MaxPool1d, nn.AvgPool1d, nn.Unflatten)
    return not isinstance(module, shaping) and not any(True for _ in module.parameters())


def _bytes(values: np.ndarray, bound: float) -> str:
    scaled = np.clip(values / (bound or 1.0), -1.0, 1.0)
    return base64.b64encode(np.round((scaled + 1.0) * 127.5).astype(np.uint8).tobytes()).decode("ascii")


def _sequential_layers(model: nn.Sequential, x: Tensor) -> tuple[Tensor, list[tuple[str, Tensor, bool]]]:
    """The logits and each layer's output (an activation shown with the layer it follows) of a Sequential, with
    False: every unit of each is shown (see :func:`_child_layers`)."""
    outputs: list[tuple[str, Tensor, bool]] = []
    signal = x
    modules = list(model)
    for position, module in enumerate(modules):
        signal = module(signal)
        following = modules[position + 1] if position + 1 < len(modules) else None
        activated_next = following is not None and _is_activation(following)
        if not isinstance(module, (nn.Flatten, nn.Dropout)) and not activated_next:
            label = type(module).__name__
            if _is_activation(module) and position > 0:
                label = f"{type(modules[position - 1]).__name__} + {label}"
            outputs.append((f"{len(outputs) + 1}: {label}", signal, False))
    return signal, outputs


def _child_layers(model: nn.Module, x: Tensor) -> tuple[Tensor, list[tuple[str, Tensor, bool]]]:
    """The logits and each direct child's output of any other model (the recurrent runs' SequenceClassifier:
    the recurrent layer's outputs, then the linear head), seen through forward hooks. A recurrent layer's
    outputs (N, steps, hidden) are marked True: the page shows its last step, the one the head reads (the
    gradient of the others is zero)."""
    outputs: list[tuple[str, Tensor, bool]] = []

    def record(name: str) -> Any:
        def hook(module: nn.Module, inputs: tuple, output: Any) -> None:
            first = output[0] if isinstance(output, tuple) else output  # an RNN's (outputs, last state)
            if isinstance(first, Tensor) and not isinstance(module, (nn.Flatten, nn.Dropout)):
                label, steps = f"{len(outputs) + 1}: {type(module).__name__} ({name})", first.ndim == 3
                outputs.append((f"{label}, last of {first.shape[1]} steps" if steps else label, first, steps))

        return hook

    handles = [child.register_forward_hook(record(name)) for name, child in model.named_children()]
    try:
        logits = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return logits, outputs


def predict_digit(run_dir: str | os.PathLike[str], image: np.ndarray) -> dict[str, Any]:
    """What the run's model makes of ``image``: classes, the sample it saw, every layer and the contributions."""
    from chainrule.train.runs import _dataset_info, load_run

    run_path = Path(run_dir)
    if _run_info(run_path) is None:
        if not run_path.is_dir():
            raise CheckpointError(f"digit pad: {str(run_dir)!r} is not a directory")
        raise CheckpointError(
            f"digit pad: {str(run_dir)!r} is not an image classification run of 'chainrule train' "
            "(expected config.json and model.safetensors of a digits, MNIST or Fashion-MNIST run)"
        )
    model, config = load_run(run_path)
    info = _dataset_info(config)
    sample = prepare_image(image, like=info, source="the digit pad")  # (1, H, W) or (H, W)
    names = info.class_names or [str(c) for c in range(info.num_classes or 0)]

    x = Tensor(sample[None].astype(np.float32), requires_grad=True)  # (1, *input_shape)
    with autograd.enable_grad():
        logits, outputs = _sequential_layers(model, x) if isinstance(model, nn.Sequential) else _child_layers(model, x)
        probabilities = np.exp(logits.data[0] - logits.data[0].max())
        probabilities = probabilities / probabilities.sum()
        winner = int(np.argmax(probabilities))
        grads = autograd.grad(logits[0, winner], [x, *(tensor for _, tensor, _ in outputs)], allow_unused=True)

    layers = []
    for (name, tensor, last_step), grad in zip(outputs, grads[1:]):
        shown_part = (lambda a: a[0, -1]) if last_step else (lambda a: a[0])
        values = shown_part(tensor.data).reshape(-1).astype(np.float64)
        slope = np.zeros_like(values) if grad is None else shown_part(grad.data).reshape(-1).astype(np.float64)
        contributions = values * slope
        top = np.argsort(-contributions)[:_TOP]
        shown = values[:_SHOWN_UNITS]
        bound = float(np.abs(shown).max(initial=0.0))
        layers.append(
            {
                "name": name,
                "shape": list(tensor.shape[2:] if last_step else tensor.shape[1:]),
                "units": int(values.size),
                "shown": int(shown.size),
                "scale": bound,
                "values": _bytes(shown, bound),
                "top": [
                    {"unit": int(j), "value": float(values[j]), "contribution": float(contributions[j])} for j in top
                ],
            }
        )
    saliency = (x.data[0] * grads[0].data[0]).reshape(sample.shape[-2:]) if grads[0] is not None else None
    order = np.argsort(-probabilities)
    return {
        "run": str(run_dir),
        "data": info.name,
        "winner": winner,
        "winner_name": names[winner] if winner < len(names) else str(winner),
        "classes": [{"index": int(c), "name": names[c], "probability": float(probabilities[c])} for c in order],
        "input": {
            "height": int(sample.shape[-2]),
            "width": int(sample.shape[-1]),
            "data": base64.b64encode(np.round(np.clip(sample, 0, 1) * 255).astype(np.uint8).tobytes()).decode(),
        },
        "saliency": None
        if saliency is None
        else {"scale": float(np.abs(saliency).max()), "data": _bytes(saliency, float(np.abs(saliency).max()))},
        "layers": layers,
    }
