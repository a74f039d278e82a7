r"""A sensor whose tensors follow the dtype and device of the field it is applied to.

deepinv's operators keep their tensors (a blur filter, an inpainting mask, a decimation filter) in
the dtype and on the device they were built with, usually float32 on the CPU, and
``torch.nn.functional.conv2d`` refuses a float64 field with a float32 filter. pdeinv's methods run
in the prior's dtype (often float64) and on its device, so :func:`follow_state` gives them a
*private copy* of a user's sensor (deepinv's ``Physics.clone()``) whose floating-point parameters
and buffers are cast to the dtype and device of the first argument of each call of ``A``,
``A_adjoint``, ``A_dagger``, ``A_adjoint_A``, ``A_A_adjoint``, ``A_vjp``, ``forward``,
``prox_l2`` and, for a decomposable operator, ``U``, ``V`` and their adjoints (those the class
has). The casts always start from the tensors as the sensor held them (float32 -> float64 ->
float32 is exact, and a float64 filter is never rounded through float32 and back; a tensor that
deepinv's ``update_parameters`` replaced on the copy becomes the new original); complex buffers
become the complex type of the same precision (``complex64`` for float32, ``complex128`` for
float64) rather than losing their imaginary part as ``module.to(torch.float64)`` would. Integer
and boolean tensors are not touched.

The user's object is never modified: its tensors keep their dtype and device and its later
results are unchanged. The copy is a snapshot: a filter the user changes afterwards on their own
object does not reach a problem already built from it. The copy is an instance of a subclass of the
sensor's class with the same name, so ``isinstance`` checks and attributes (``noise_model``,
``mask``, ...) work as on the original.

pdeinv's own operators (:mod:`pdeinv.operators`) already compute in the input's dtype and are
returned as they are, as are sensors that hold no floating-point tensor.
"""

from __future__ import annotations

import copy

import torch
from deepinv.physics import Physics

_COMPLEX_OF = {torch.float16: torch.complex32, torch.float32: torch.complex64, torch.float64: torch.complex128}
# Methods whose first argument is a field or a measurement, wrapped where the sensor's class has them.
_FOLLOWED = (
    "A", "A_adjoint", "A_dagger", "A_adjoint_A", "A_A_adjoint", "A_vjp", "forward", "prox_l2", "U", "U_adjoint", "V",
    "V_adjoint",
)
_SUBCLASSES: dict[type, type] = {}


def _tensor_slots(module: torch.nn.Module) -> list[list]:
    """``[container, name, tensor]`` of each floating or complex parameter and buffer of ``module`` and its children."""
    slots = []
    for child in module.modules():
        for container in (child._parameters, child._buffers):
            for name, tensor in container.items():
                if tensor is not None and (tensor.is_floating_point() or tensor.is_complex()):
                    slots.append([container, name, tensor])
    return slots


def _cast(tensor: torch.Tensor, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    target = _COMPLEX_OF[dtype] if tensor.is_complex() else dtype
    cast = tensor.detach().to(device=device, dtype=target)
    if isinstance(tensor, torch.nn.Parameter):
        return torch.nn.Parameter(cast, requires_grad=tensor.requires_grad)
    return cast


class StateFollowing:
    """Mixin of :func:`follow_state`'s copies: casts the copy's tensors to each field's dtype and device first."""

    def _follow(self, x) -> None:
        if not isinstance(x, torch.Tensor) or x.dtype not in _COMPLEX_OF:
            return
        key = (x.dtype, x.device)
        if self._followed_state == key and all(container[name] is cast for container, name, _, cast in self._slots):
            return
        for slot in self._slots:
            container, name, original, cast = slot
            if container[name] is not cast:  # replaced since the last cast (update_parameters): the new original
                original = container[name]
            slot[2], slot[3] = original, _cast(original, x.dtype, x.device)
            container[name] = slot[3]
        self._followed_state = key


def _following(method_name: str):
    def method(self, x, *args, **kwargs):
        self._follow(x)
        return getattr(super(StateFollowing, self), method_name)(x, *args, **kwargs)

    method.__name__ = method_name
    method.__doc__ = f"``{method_name}`` of the sensor, its tensors cast to the dtype and device of the first argument."
    return method


def _subclass(cls: type) -> type:
    """The subclass of ``cls`` (same name) whose instances follow the state's dtype and device."""
    if cls not in _SUBCLASSES:
        namespace = {name: _following(name) for name in _FOLLOWED if callable(getattr(cls, name, None))}
        namespace.update(__qualname__=cls.__qualname__, __module__=cls.__module__)
        _SUBCLASSES[cls] = type(cls.__name__, (StateFollowing, cls), namespace)
    return _SUBCLASSES[cls]


def follow_state(sensor):
    """A copy of ``sensor`` whose tensors follow each field's dtype and device (module docstring), or ``sensor``.

    Parameters
    ----------
    sensor : deepinv.physics.Physics
        Any deepinv operator.

    Returns
    -------
    deepinv.physics.Physics
        ``sensor`` itself when it is one of pdeinv's operators, already a following copy, not a
        deepinv ``Physics`` or holds no floating-point tensor; otherwise a following copy.
    """
    own = type(sensor).__module__.split(".")[0] == "pdeinv"
    if isinstance(sensor, StateFollowing) or own or not isinstance(sensor, Physics) or not _tensor_slots(sensor):
        return sensor
    duplicate = sensor.clone() if callable(getattr(sensor, "clone", None)) else copy.deepcopy(sensor)
    duplicate.__class__ = _subclass(type(sensor))
    duplicate._slots = [[container, name, tensor, None] for container, name, tensor in _tensor_slots(duplicate)]
    duplicate._followed_state = None
    return duplicate
