r"""Operator-consistent joint priors: the output channel is the solve of the input channel.

For a joint prior over ``(input, output)`` with ``output = A input`` and ``A`` linear, the exact
denoiser of the output channel is determined by that of the input channel:

.. math:: E[u_0 \mid x] = E[A a_0 \mid x] = A\,E[a_0 \mid x],

where ``x`` is the noisy joint field. :class:`OperatorConsistentPrior` keeps a joint prior's
input-channel estimate (which sees both noisy channels) and replaces its output-channel estimate
by ``A`` of it. This loses nothing relative to the exact denoiser and makes every denoised
estimate, hence every sample, satisfy the PDE to solver precision; measurement guidance on the
output channel then flows through the exact solver.

For a nonlinear ``A`` (Navier-Stokes) the same map, :math:`(E[a_0 \mid x], A(E[a_0 \mid x]))`,
is the projection of the estimate onto the solution manifold rather than the exact posterior
mean (:math:`E[A(a_0) \mid x] \ne A(E[a_0 \mid x])` while the posterior of :math:`a_0` is
broad); the two agree as :math:`\sigma \to 0`, so samples still end on the manifold, and the
output channel of a sample is the pushforward of its input channel, not the network's guess.

The same projection can be applied while training (``pdeinv train prior --operator-consistent``): the
loss on the output channel then reaches the network's input-channel estimate through :math:`A`,
and :func:`consistent_from_card` restores the form when the checkpoint is loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from pdeinv.priors.base import FieldPrior


class OperatorConsistentPrior(FieldPrior):
    """A joint prior whose output channel is the forward operator applied to its input channel.

    Parameters
    ----------
    prior : FieldPrior
        Joint prior over ``(B, C, S, S)`` normalised fields with channels ``input_channel`` and
        ``output_channel``.
    operator : deepinv.physics.Physics or callable
        The forward map ``A`` on physical ``(B, 1, S, S)`` fields (e.g. ``Helmholtz(S)``, or
        ``NavierStokes2D(S).with_time_step(1e-2)`` for a cheaper nonlinear solve), built for the
        resolution the prior is used at; or a function ``S -> A`` building it for any grid size
        (for a resolution-free prior, e.g. one loaded from a checkpoint). A ``LinearPhysics`` makes
        the form exact; any other operator makes it the projection of the module docstring.
    input_channel, output_channel : str
        Channel names of ``a`` and ``u = A a`` in ``prior.channels``.

    Attributes
    ----------
    linear : bool
        Whether ``A`` is a ``LinearPhysics`` (the form is then the exact denoiser's).

    Raises
    ------
    ValueError
        If a channel name is not one of the prior's.
    """

    def __init__(
        self,
        prior: FieldPrior,
        operator,
        input_channel: str = "source",
        output_channel: str = "solution",
    ):
        missing = [c for c in (input_channel, output_channel) if c not in prior.channels]
        if missing:
            raise ValueError(f"the prior's channels are {prior.channels}; {missing} not among them")
        super().__init__(prior.channels, prior.mean, prior.std, prior.sigma_data, prior.resolution, prior.card)
        self.prior = prior
        self._build: Callable[[int], object] | None = None if _is_physics(operator) else operator
        self._operators: dict[int, object] = {}
        self.operator = operator if self._build is None else operator(prior.resolution)
        self.linear = _is_linear(self.operator)
        self.resolution_free = prior.resolution_free
        self.is_gaussian = prior.is_gaussian
        self.input_index = prior.channels.index(input_channel)
        self.output_index = prior.channels.index(output_channel)

    def with_prior(self, prior: FieldPrior) -> OperatorConsistentPrior:
        """The same operator-consistent form around another joint prior with the same channels."""
        operator = self.operator if self._build is None else self._build
        channels = self.prior.channels
        return OperatorConsistentPrior(prior, operator, channels[self.input_index], channels[self.output_index])

    def operator_at(self, size: int):
        """The forward map for an ``S x S`` grid: the given operator, or the factory's (cached per size)."""
        if self._build is None or size == self.prior.resolution:
            return self.operator
        if size not in self._operators:
            self._operators[size] = self._build(size)
        return self._operators[size]

    def denoise(self, x: torch.Tensor, sigma: float | torch.Tensor) -> torch.Tensor:
        r"""``(B, C, S, S) -> (B, C, S, S)``: the inner estimate with its output channel set to ``A`` of its input."""
        return self.project(self.prior.denoise(x, sigma))

    def project(self, estimate: torch.Tensor) -> torch.Tensor:
        """Normalised joint fields ``(B, C, S, S)`` with the output channel replaced by the solve of the input."""
        i, o = self.input_index, self.output_index
        operator = self.operator_at(estimate.shape[-1])
        solution = normalised_solve(operator, estimate[:, i : i + 1], self.mean, self.std, i, o)
        return self._with_output(estimate, solution)

    def gaussian_jvp(self, v: torch.Tensor, sigma: float) -> torch.Tensor | None:
        r""":math:`L J_{aa} L^\top v`, the posterior covariance over :math:`\sigma^2` of ``x_0 = L a_0``.

        With :math:`L = (I, \hat A)^\top` mapping a normalised input to the normalised joint field
        (:math:`\hat A = (s_a / s_u) A`) and :math:`J_{aa}` the input block of the inner Gaussian
        part's Jacobian, :math:`\operatorname{Cov}[x_0 \mid x_\sigma] = \sigma^2 L J_{aa} L^\top`.
        It equals the Jacobian of :meth:`denoise`'s Gaussian part when the inner Gaussian is itself
        consistent with ``A`` (then :math:`J_{au} = J_{aa} \hat A^\top`), and unlike that Jacobian it
        stays symmetric positive semi-definite when it is not (a Gaussian part fitted in a basis that
        does not diagonalise ``A``).

        ``None`` for a nonlinear ``A``, whose Jacobian depends on the estimate: guidance then
        differentiates the prior itself.
        """
        if not self.linear:
            return None
        i, o = self.input_index, self.output_index
        inner = self.prior.gaussian_jvp(self._probe(v), sigma)
        if inner is None:
            return None
        operator = self.operator_at(v.shape[-1])
        return self._with_output(inner, operator.A(self.std[i] * inner[:, i : i + 1]) / self.std[o])

    def linearised_probe(self, v: torch.Tensor, estimate: torch.Tensor) -> torch.Tensor:
        r""":math:`E_a L_x^\top v` with the solve linearised at each estimate: the form of :meth:`_probe` for any ``A``.

        At a normalised joint estimate :math:`x` with physical input :math:`a = m_a + s_a x_a`, the
        map from a normalised input to the normalised joint field is linearised to
        :math:`L_x = (I, (s_a / s_u) A'(a))^\top` (:math:`A'` the Jacobian of the projected solve,
        :func:`~pdeinv.pdes.spec.solve_estimate_adjoint`), so that
        :math:`\operatorname{Cov}[x_0 \mid x_\sigma] \approx \sigma^2 L_x J_{aa} L_x^\top` near
        :math:`x`: the Gauss-Newton form of :meth:`gaussian_jvp`, equal to it for a linear ``A``.

        Parameters
        ----------
        v : torch.Tensor
            Cotangents on the normalised joint field, ``(K, B, C, S, S)``.
        estimate : torch.Tensor
            The linearisation points, normalised joint fields ``(B, C, S, S)``.

        Returns
        -------
        torch.Tensor
            ``(K, B, C, S, S)``: input channel :math:`v_a + (s_a/s_u) A'(a)^\top v_u`, output channel 0.
        """
        from pdeinv.pdes.spec import solve_estimate_adjoint

        i, o = self.input_index, self.output_index
        operator = self.operator_at(estimate.shape[-1])
        source = (self.mean[i] + self.std[i] * estimate[:, i : i + 1]).to(v.dtype)
        pulled = solve_estimate_adjoint(operator, source, v[:, :, o : o + 1])
        probe = v[:, :, i : i + 1] + self.std[i] * pulled.to(v) / self.std[o]
        joint = torch.zeros_like(v)
        joint[:, :, i : i + 1] = probe
        return joint

    def _probe(self, v: torch.Tensor) -> torch.Tensor:
        r""":math:`E_a L^\top v`: input channel :math:`v_a + (s_a/s_u) A^\top v_u`, output channel 0, ``(B, C, S, S)``."""
        i, o = self.input_index, self.output_index
        operator = self.operator_at(v.shape[-1])
        pulled = v[:, i : i + 1] + self.std[i] * operator.A_adjoint(v[:, o : o + 1]) / self.std[o]
        return self._with_output(self._with_input(v, pulled), torch.zeros_like(pulled))

    def gaussian_spectrum(self, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        r"""Coordinates and variances of :math:`L J_{aa} L^\top = (L E_a^\top W)\,\mathrm{diag}(g)\,(L E_a^\top W)^\top`.

        :math:`W^\top E_a L^\top v` is the inner Gaussian part's coordinates of the probe of
        :meth:`gaussian_jvp` (input channel :math:`v_a + (s_a/s_u) A^\top v_u`, output channel 0);
        see :func:`~pdeinv.priors.spectral_gaussian.prior_spectrum`. ``None`` for a nonlinear ``A``
        or an inner prior without a spectral Gaussian part.
        """
        from pdeinv.priors.spectral_gaussian import prior_spectrum

        if not self.linear:
            return None
        return prior_spectrum(self.prior, self._probe(v))

    def _with_output(self, estimate: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return _replace_channel(estimate, self.output_index, value)

    def _with_input(self, estimate: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        return _replace_channel(estimate, self.input_index, value)


def normalised_solve(operator, source, mean, std, input_index: int, output_index: int) -> torch.Tensor:
    r"""The normalised solve :math:`\hat A a = (A(m_a + s_a a) - m_u) / s_u` of a normalised input ``(B, 1, S, S)``.

    ``mean`` and ``std`` are a joint prior's per-channel normalisation (``(C,)``), ``input_index``
    and ``output_index`` the channels of :math:`a` and :math:`u = A a`; returns ``(B, 1, S, S)``.

    For a PDE whose operator has a restricted domain (Darcy's positive permeability) the physical
    input is projected onto it before the solve (:func:`pdeinv.pdes.solve_estimate`).
    """
    from pdeinv.pdes import solve_estimate

    i, o = input_index, output_index
    return (solve_estimate(operator, mean[i] + std[i] * source) - mean[o]) / std[o]


def _is_physics(operator) -> bool:
    import deepinv

    return isinstance(operator, deepinv.physics.Physics)


def _is_linear(operator) -> bool:
    import deepinv

    return isinstance(operator, deepinv.physics.LinearPhysics)


def _replace_channel(fields: torch.Tensor, index: int, value: torch.Tensor) -> torch.Tensor:
    """``(B, C, S, S)`` fields with channel ``index`` replaced by ``value`` ``(B, 1, S, S)``."""
    channels = list(fields.split(1, dim=1))
    channels[index] = value.to(fields.dtype)
    return torch.cat(channels, dim=1)


def consistent_if_linear(prior: FieldPrior, operator, input_channel: str, output_channel: str) -> FieldPrior:
    """``prior`` in operator-consistent form when ``operator`` is linear, else ``prior`` unchanged.

    A prior that is already operator-consistent (e.g. loaded from a checkpoint trained in that
    form) is returned as it is, and so is a latent prior (one with its own state ``space``), whose
    denoiser works on latents, not on the joint field.
    """
    return consistent_form(prior, operator, input_channel, output_channel) if _is_linear(operator) else prior


def consistent_form(prior: FieldPrior, operator, input_channel: str, output_channel: str) -> FieldPrior:
    """``prior`` in operator-consistent form for any ``operator``.

    A prior already in that form, and a latent prior (one with its own state ``space``, whose
    denoiser works on latents, not on the joint field), are returned as they are.
    """
    if isinstance(prior, OperatorConsistentPrior) or getattr(prior, "space", None) is not None:
        return prior
    return OperatorConsistentPrior(prior, operator, input_channel, output_channel)


def consistent_from_card(prior: FieldPrior, card: dict, solver_dt: float | None = None) -> OperatorConsistentPrior:
    """``prior`` in the operator-consistent form of its card.

    The channels are ``card["operator_consistent"]`` for a prior trained in that form, else the
    training file's input and output fields; the forward map is rebuilt from the training data's
    attributes (``card["data"]["attrs"]``) for whatever grid size the prior is evaluated at, solved
    with time step ``solver_dt`` when given.
    """
    from pdeinv.priors.quality import operator_for

    attrs = card["data"]["attrs"]
    spec = card.get("operator_consistent") or consistency_spec(attrs, prior.channels)
    return OperatorConsistentPrior(
        prior,
        lambda size: with_time_step(operator_for(attrs, size), solver_dt),
        spec["input_channel"],
        spec["output_channel"],
    )


def with_time_step(operator, dt: float | None):
    """``operator`` solved with time step ``dt`` (``None``: unchanged).

    Raises
    ------
    ValueError
        If ``dt`` is given for an operator without a time step.
    """
    if dt is None:
        return operator
    if not hasattr(operator, "with_time_step"):
        raise ValueError(
            f"solver_dt sets the time step of a time-dependent PDE; {type(operator).__name__} has none. Drop it"
        )
    return operator.with_time_step(dt)


def consistency_spec(attrs: dict, channels: Sequence[str]) -> dict:
    """The card entry of an operator-consistent prior trained on ``channels`` of a file with root ``attrs``.

    Raises
    ------
    ValueError
        If the file does not name one input and one output field among ``channels``.
    """
    inputs, outputs = list(attrs.get("input_fields", [])), list(attrs.get("output_fields", []))
    if len(inputs) != 1 or len(outputs) != 1 or not {inputs[0], outputs[0]} <= set(channels):
        raise ValueError(
            f"the operator-consistent form needs the file's input and output fields as channels; the file has "
            f"input_fields={inputs}, output_fields={outputs} and the channels are {list(channels)}"
        )
    return {"input_channel": inputs[0], "output_channel": outputs[0]}
