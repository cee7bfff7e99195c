"""The optimizer base: parameter groups, per-parameter state, ``zero_grad``, and state dicts."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Mapping, Set
from typing import Any, ClassVar

import numpy as np

from chainrule import _checks as check
from chainrule.anomaly import user_site
from chainrule.autograd import no_grad
from chainrule.errors import ArgumentError, CheckpointError, DTypeError, ShapeError
from chainrule.tensor import Tensor

__all__ = ["Optimizer"]


def _ordered(owner: str, name: str, params: Any) -> Iterable[Any]:
    """``params`` if it is an ordered iterable (list, tuple, generator); a lone tensor, a dict, a set, a string
    or a number is refused (a set's order changes between runs, and the state dict refers to positions)."""
    if isinstance(params, Tensor):
        raise ArgumentError(f"{owner}: {name} must be an iterable of tensors, got one Tensor; wrap it in a list")
    if isinstance(params, (Set, str, bytes)) or (isinstance(params, Mapping) and name == "params"):
        hint = "; wrap the group in a list: [{'params': ...}]" if isinstance(params, Mapping) else ""
        raise ArgumentError(
            f"{owner}: {name} must be an ordered iterable of tensors or of dicts, got {type(params).__name__}{hint}"
        )
    try:
        return iter(params)
    except TypeError:
        raise ArgumentError(
            f"{owner}: {name} must be an iterable of tensors or of dicts, got {type(params).__name__}"
        ) from None


class Optimizer:
    """Base class: holds ``param_groups`` (each a dict of params and hyperparameters) and ``state[param]``.

    Subclasses declare their hyperparameters in ``ranges`` (the interval each number must lie in) and
    ``flags`` (the ones that must be ``True`` or ``False``), pass the defaults here, and name their update
    math: ``update_rule``, a plain function ``rule(param, grad, state, **options)`` on arrays, and
    ``update_options``, the hyperparameters it takes by name (:meth:`_options` adds any it derives). The
    base ``_update(group)`` applies it to each parameter of the group that has a gradient; an optimizer
    whose step is not one function per parameter (K-FAC) overrides ``_update`` instead.
    Every hyperparameter is checked by one validator (:meth:`_validate`) when a group is added: NaN, infinite
    or boolean numbers, and values outside their interval, raise ``ArgumentError`` naming the optimizer, the
    hyperparameter and the value. ``step()`` re-checks only the learning rate (the value schedulers and
    users change between steps) and that each gradient matches its parameter's shape and dtype.

    Each parameter may appear once: the same tensor twice in one list, or in two groups, raises
    ``ArgumentError`` (PyTorch only warns for one list, and then updates that parameter twice per step).
    ``Module.parameters()`` already lists a shared parameter once.

    Parameters
    ----------
    params : iterable of Tensor, or of dicts
        The parameters to optimize (leaf, floating-point tensors with ``requires_grad=True``), or groups
        ``{"params": [...], "lr": ...}`` with their own settings. An ordered collection: not a set.
    defaults : dict
        Hyperparameters used where a group does not set its own.
    """

    #: the interval of each numeric hyperparameter: ``(low, high, low_open, high_open)``; ``inf`` ends are open
    ranges: ClassVar[dict[str, tuple[float, float, bool, bool]]] = {"lr": (0.0, math.inf, False, True)}
    #: the hyperparameters that must be ``True`` or ``False``
    flags: ClassVar[tuple[str, ...]] = ("maximize",)
    #: the update math, ``rule(param, grad, state, **options)``: one parameter's arrays, in place (a
    #: ``staticmethod``, so that it is not bound to the optimizer)
    update_rule: ClassVar[Callable[..., Any] | None] = None
    #: the group's hyperparameters passed to ``update_rule`` by name
    update_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, params: Iterable[Tensor] | Iterable[Mapping[str, Any]], defaults: Mapping[str, Any]) -> None:
        name = type(self).__name__
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Tensor, dict[str, Any]] = {}
        groups = list(_ordered(name, "params", params))
        if not groups:
            raise ArgumentError(f"{name}: got an empty parameter list")
        if not isinstance(groups[0], Mapping):
            groups = [{"params": groups}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: Mapping[str, Any]) -> None:
        """Add a group of parameters with its own hyperparameters (missing ones take the defaults).

        Raises
        ------
        ArgumentError
            If a parameter is not a leaf floating-point tensor requiring grad, appears twice (here or in an
            earlier group), or a hyperparameter is unknown or invalid.
        """
        name = type(self).__name__
        if not isinstance(group, Mapping) or "params" not in group:
            raise ArgumentError(
                f"{name}: a parameter group must be a dict with a 'params' entry, got {type(group).__name__}"
            )
        params = group["params"]
        params = [params] if isinstance(params, Tensor) else list(_ordered(name, "a group's 'params'", params))
        offset = sum(len(g["params"]) for g in self.param_groups)
        earlier = {id(p) for g in self.param_groups for p in g["params"]}
        here: set[int] = set()
        for i, p in enumerate(params, start=offset):
            if not isinstance(p, Tensor):
                raise ArgumentError(f"{name}: parameters must be tensors, got {type(p).__name__} (parameter {i})")
            if p.dtype.kind != "f":
                raise ArgumentError(f"{name}: parameter {i} of shape {p.shape} is {p.dtype}; only floating point")
            if not p.requires_grad:
                raise ArgumentError(f"{name}: a parameter of shape {p.shape} does not require grad (parameter {i})")
            if not p.is_leaf:
                raise ArgumentError(
                    f"{name}: parameter {i} of shape {p.shape} is not a leaf (computed by {p.grad_fn}); "
                    "optimize the tensors it was computed from, or detach it and set requires_grad"
                )
            if id(p) in earlier or id(p) in here:
                where = "in an earlier parameter group" if id(p) in earlier else "twice in one parameter list"
                raise ArgumentError(
                    f"{name}: parameter {i} of shape {p.shape} appears {where}; pass each parameter once "
                    "(it would be updated twice per step)"
                )
            here.add(id(p))
        unknown = set(group) - set(self.defaults) - {"params", "initial_lr"}
        if unknown:
            raise ArgumentError(f"{name}: unknown hyperparameters {sorted(unknown)}")
        full = {**self.defaults, **group, "params": params}
        owner = name if not self.param_groups else f"{name} (parameter group {len(self.param_groups)})"
        self._validate(full, owner)
        self.param_groups.append(full)

    def _validate(self, group: dict[str, Any], owner: str) -> None:
        """Check every hyperparameter of ``group`` against ``ranges`` and ``flags``, normalising it in place.

        Subclasses extend this for rules across hyperparameters (Nesterov needs momentum) and tuples (betas).
        """
        for key, (low, high, low_open, high_open) in self.ranges.items():
            label = "learning rate" if key == "lr" else key
            group[key] = check.real(
                owner, key, group[key], low, high, low_open=low_open, high_open=high_open, label=label
            )
        for key in self.flags:
            group[key] = check.flag(owner, key, group[key])

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
        self._check_before_step()
        for group in self.param_groups:
            self._update(group)
        # The parameters changed in place: a graph that saved them can no longer give their gradient.
        site = f"{type(self).__name__}.step() {user_site()}"
        for group in self.param_groups:
            for p in group["params"]:
                if p._grad is not None:
                    p._mark_modified(site)
        return loss

    def _check_before_step(self) -> None:
        """The per-step checks, before any parameter moves: each group's learning rate (a float in [0, inf)
        after a scheduler, so one comparison) and each gradient's shape and dtype."""
        for group in self.param_groups:
            lr = group["lr"]
            if lr.__class__ is not float or not 0.0 <= lr < math.inf:  # NaN fails the comparison
                low, high, low_open, high_open = self.ranges["lr"]
                group["lr"] = check.real(
                    f"{type(self).__name__}.step",
                    "lr",
                    lr,
                    low,
                    high,
                    low_open=low_open,
                    high_open=high_open,
                    label="learning rate",
                )
            for p in group["params"]:
                grad = p.grad
                if grad is not None and (
                    not isinstance(grad, Tensor) or grad.data.shape != p.data.shape or grad.data.dtype != p.data.dtype
                ):
                    self._bad_grad(p)

    def _bad_grad(self, param: Tensor) -> None:
        index = next(i for i, p in enumerate(p for g in self.param_groups for p in g["params"]) if p is param)
        grad, where = param.grad, f"{type(self).__name__}.step: the gradient of parameter {index}"
        if not isinstance(grad, Tensor):
            raise DTypeError(f"{where} (shape {param.shape}) is a {type(grad).__name__}, not a Tensor")
        if grad.shape != param.shape:
            raise ShapeError(f"{where} has shape {grad.shape}, the parameter {param.shape}; they must match")
        raise DTypeError(f"{where} (shape {param.shape}) is {grad.dtype}, the parameter {param.dtype}; they must match")

    def _options(self, group: dict[str, Any]) -> dict[str, Any]:
        """The keyword arguments of ``update_rule`` for ``group``: its ``update_options``, by name."""
        return {key: group[key] for key in self.update_options}

    def _update(self, group: dict[str, Any]) -> None:
        """Apply ``update_rule`` to each parameter of ``group`` that has a gradient, with its state."""
        rule = type(self).update_rule  # from the class: a plain function or a staticmethod alike, never bound
        if rule is None:
            raise NotImplementedError(f"{type(self).__name__}: set update_rule or override _update")
        options = self._options(group)
        state = self.state
        for p in group["params"]:
            if p.grad is not None:
                rule(p.data, p.grad.data, state.setdefault(p, {}), **options)

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
        restored_groups = []
        for saved, group in zip(groups, self.param_groups):
            settings = {k: copy.deepcopy(v) for k, v in saved.items() if k != "params"}
            unknown = set(settings) - set(self.defaults) - {"initial_lr"}
            if unknown:
                raise CheckpointError(f"{name}.load_state_dict: unknown hyperparameters {sorted(unknown)}")
            candidate = {**group, **settings}
            try:  # a checkpoint edited or corrupted to a NaN learning rate fails here, not epochs later
                self._validate(candidate, f"{name}.load_state_dict")
            except ArgumentError as error:
                raise CheckpointError(str(error)) from None
            restored_groups.append(candidate)
        for group, candidate in zip(self.param_groups, restored_groups):
            group.update(candidate)
        self.state = new_state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, group in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            lines += [f"    {k}: {v}" for k, v in sorted(group.items()) if k != "params"]
        return "\n".join([*lines, ")"])
