"""The optimizer base: parameter groups, per-parameter state, ``zero_grad``, and state dicts."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from chainrule.anomaly import user_site
from chainrule.autograd import no_grad
from chainrule.errors import ArgumentError, ChainruleError, CheckpointError
from chainrule.tensor import Tensor

__all__ = ["Optimizer"]


class Optimizer:
    """Base class: holds ``param_groups`` (each a dict of params and hyperparameters) and ``state[param]``.

    Subclasses validate their hyperparameters, pass the defaults here, and implement ``_update(group)``,
    which applies the update math (a plain function) to each parameter of the group.

    Parameters
    ----------
    params : iterable of Tensor, or of dicts
        The parameters to optimize, or groups ``{"params": [...], "lr": ...}`` with their own settings.
    defaults : dict
        Hyperparameters used where a group does not set its own.
    """

    def __init__(self, params: Iterable[Tensor] | Iterable[Mapping[str, Any]], defaults: Mapping[str, Any]) -> None:
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Any]] = {}
        groups = list(params)
        if not groups:
            raise ArgumentError(f"{type(self).__name__}: got an empty parameter list")
        if not isinstance(groups[0], Mapping):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: Mapping[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (missing ones take the defaults)."""
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(params)
        for p in params:
            if not isinstance(p, Tensor):
                raise ArgumentError(f"{type(self).__name__}: parameters must be tensors, got {type(p).__name__}")
            if not p.requires_grad:
                raise ArgumentError(f"{type(self).__name__}: a parameter of shape {p.shape} does not require grad")
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ArgumentError(f"{type(self).__name__}: a parameter appears in more than one group")
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ArgumentError(f"{type(self).__name__}: unknown hyperparameters {sorted(unknown)}")
        full = {**self.defaults, **group, "params": params}
        try:
            self._validate(full)
        except (TypeError, ValueError) as error:  # a comparison with a string, a tuple of the wrong length ...
            if isinstance(error, ChainruleError):
                raise
            settings = {key: value for key, value in full.items() if key != "params"}
            raise ArgumentError(f"{type(self).__name__}: invalid hyperparameters {settings} ({error})") from None
        self.param_groups.append(full)

    def _validate(self, group: Mapping[str, Any]) -> None:
        """Raise ValueError for bad hyperparameters (subclasses extend this)."""
        if group["lr"] < 0:
            raise ArgumentError(f"{type(self).__name__}: invalid learning rate {group['lr']} (must be >= 0)")

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Reset the gradients of all parameters (to None by default, or to zeros)."""
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none or p.grad is None:
                    p.grad = None
                else:
                    p.grad.data[...] = 0

    @no_grad()
    def step(self, closure: Callable[[], Any] | None = None) -> Any:
        """Update every parameter that has a gradient; ``closure`` re-evaluates the loss and is called first."""
        loss = None
        if closure is not None:
            from chainrule.autograd import enable_grad

            with enable_grad():
                loss = closure()
        for group in self.param_groups:
            self._update(group)
        # The parameters changed in place: a graph that saved them can no longer give their gradient.
        site = f"{type(self).__name__}.step() {user_site()}"
        for group in self.param_groups:
            for p in group["params"]:
                if p._grad is not None:
                    p._mark_modified(site)
        return loss

    def _update(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    # -- state dicts: PyTorch's layout, parameters referred to by their index over all groups --------------
    def state_dict(self) -> dict[str, Any]:
        """``{"state": {index: {name: array or number}}, "param_groups": [{..., "params": [indices]}]}``."""
        index = {id(p): i for i, p in enumerate(p for g in self.param_groups for p in g["params"])}
        state = {}
        for param, values in self.state.items():
            state[index[id(param)]] = {
                k: (v.copy() if isinstance(v, np.ndarray) else copy.deepcopy(v)) for k, v in values.items()
            }
        groups = []
        for group in self.param_groups:
            saved = {k: v for k, v in group.items() if k != "params"}
            saved["params"] = [index[id(p)] for p in group["params"]]
            groups.append(saved)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Restore hyperparameters and per-parameter state saved by :meth:`state_dict`.

        Raises
        ------
        CheckpointError
            If the groups or parameter counts or state shapes do not match this optimizer.
        """
        name = type(self).__name__
        try:
            groups, state = state_dict["param_groups"], state_dict["state"]
        except (KeyError, TypeError):
            raise CheckpointError(f"{name}.load_state_dict: expected a dict with 'state' and 'param_groups'") from None
        if len(groups) != len(self.param_groups):
            raise CheckpointError(
                f"{name}.load_state_dict: {len(groups)} parameter groups saved, "
                f"{len(self.param_groups)} in this optimizer"
            )
        params = [p for g in self.param_groups for p in g["params"]]
        for saved, group in zip(groups, self.param_groups):
            if len(saved["params"]) != len(group["params"]):
                raise CheckpointError(
                    f"{name}.load_state_dict: a group has {len(saved['params'])} parameters saved "
                    f"but {len(group['params'])} here"
                )
        new_state: dict[Tensor, dict[str, Any]] = {}
        for key, values in state.items():
            i = int(key)
            if not 0 <= i < len(params):
                raise CheckpointError(f"{name}.load_state_dict: state for parameter {i}, but there are {len(params)}")
            restored = {}
            for k, v in values.items():
                if isinstance(v, (np.ndarray, Tensor)):
                    array = v.data if isinstance(v, Tensor) else v
                    if array.shape != params[i].shape and array.ndim != 0:
                        raise CheckpointError(
                            f"{name}.load_state_dict: state {k!r} of parameter {i} has shape "
                            f"{array.shape}, the parameter {params[i].shape}"
                        )
                    restored[k] = np.array(array, dtype=params[i].dtype if array.ndim else array.dtype)
                else:
                    restored[k] = copy.deepcopy(v)
            new_state[params[i]] = restored
        for saved, group in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k != "params":
                    group[k] = copy.deepcopy(v)
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join([*lines, ")"])
