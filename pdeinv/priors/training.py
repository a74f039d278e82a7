r"""Training an EDM prior on in-memory fields: AdamW, warm-up, EMA, clipping, checkpoints, resume, DDP.

One step draws a batch of normalised fields :math:`x_0` (optionally transformed by the
operator's symmetry group), :math:`\ln\sigma \sim N(P_\text{mean}, P_\text{std}^2)` and
:math:`n \sim N(0, I)`, and minimises :math:`\lambda(\sigma)\lVert D(x_0 + \sigma n, \sigma) - x_0\rVert^2`
(:func:`pdeinv.priors.edm.edm_loss`). The learning rate ramps linearly from 0 over ``warmup``
steps, then stays constant or follows a cosine decay (:func:`learning_rate`); the EMA weights
:math:`\bar\theta \leftarrow \beta\bar\theta + (1-\beta)\theta` use
:math:`\beta = 2^{-1/h_t}` with half-life :math:`h_t = \min(h, r\,t)` steps (``ema_halflife`` h,
``ema_rampup`` r), and are what the checkpoint ships.

Output directory ``out``: ``model.safetensors`` + ``card.json`` (the EMA prior, see
:mod:`pdeinv.priors.checkpoint`), ``training_state.json`` + its safetensors file (everything
needed to resume: model, EMA, optimiser, step, data order position, every rank's generator
state, the settings and the training file's SHA-256; :mod:`pdeinv.priors.training_state`) and
``log.csv``. Resuming a killed run reproduces the uninterrupted run bit for bit; it is refused
if a setting or the data differ from the run's. A non-finite loss or gradient stops the run
before the weights are updated, keeping the last checkpoint on disk.
"""

from __future__ import annotations

import copy
import csv
import fcntl
import json
import math
import numbers
import os
import platform
import time
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

import torch
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data.distributed import DistributedSampler

from pdeinv.errors import NonFiniteError, OutputExistsError, PdeinvError, UsageError
from pdeinv.files import file_sha256
from pdeinv.priors import distributed
from pdeinv.priors.augment import augment, symmetry_group
from pdeinv.priors.backbones import BACKBONES, backbone_config, build_backbone, config_dict
from pdeinv.priors.checkpoint import CARD, FORMAT, FORMAT_VERSION, WEIGHTS, save_prior
from pdeinv.priors.consistent import consistency_spec, consistent_from_card
from pdeinv.priors.data import TrainingData
from pdeinv.priors.edm import RESIDUALS, EDMConfig, EDMDenoiser, edm_loss, sample_training_sigma
from pdeinv.priors.spectral_gaussian import BASE_CHOICES, SpectralGaussianDenoiser, choose_basis
from pdeinv.priors.training_state import read_training_state, save_training_state, state_files

LOG = "log.csv"
LOCK = ".train.lock"
LOG_FIELDS = ("step", "epoch", "loss", "grad_norm", "lr", "seconds_per_step", "wall_s")
LR_SCHEDULES = ("constant", "cosine")
# Settings a resumed run may change: where it runs and what it prints, not what it computes.
RESUME_FREE_SETTINGS = ("out", "command", "progress", "device", "data")
_INTEGER_SETTINGS = {"steps": 1, "batch_size": 1, "warmup": 0, "checkpoint_every": 1, "log_every": 1, "seed": 0}
_REAL_SETTINGS = ("lr", "weight_decay", "lr_floor", "ema_halflife", "ema_rampup", "grad_clip")


@dataclass
class TrainConfig:
    """Everything that defines a training run (stored in the card and the resumable state).

    Parameters
    ----------
    out : str
        Output directory.
    backbone : str
        ``"fno"`` or ``"unet"``.
    backbone_options : dict
        Overrides of the backbone's configuration dataclass (e.g. ``{"width": 32}``).
    steps : int
        Total optimiser steps.
    batch_size : int
        Global batch size (split evenly over DDP ranks).
    lr, weight_decay : float
        AdamW learning rate (after warm-up) and decoupled weight decay.
    warmup : int
        Steps of linear learning-rate warm-up.
    lr_schedule : {"constant", "cosine"}
        Learning rate after warm-up: constant, or a cosine decay from ``lr`` at the end of the
        warm-up to ``lr * lr_floor`` at step ``steps`` (:func:`learning_rate`).
    lr_floor : float
        Final fraction of ``lr`` of the cosine schedule.
    ema_halflife : float
        EMA half-life in steps.
    ema_rampup : float
        The half-life is capped at ``ema_rampup * step`` early in training.
    grad_clip : float
        Maximum global gradient norm (``0`` disables clipping).
    checkpoint_every, log_every : int
        Checkpoint and CSV-log periods in steps.
    seed : int
        Seeds model initialisation, data order, noise and augmentation.
    augment_symmetries : bool
        Transform each sample by a random element of the operator's symmetry group.
    edm : EDMConfig
        Preconditioning and training-noise distribution.
    gaussian_base : {"none", "auto", "fft", "dst", "dct"}
        Replace EDM's skip path by the Wiener denoiser fitted to the training fields
        (:mod:`pdeinv.priors.spectral_gaussian`) so the network learns only the non-Gaussian part;
        ``"auto"`` picks ``dst`` for vertex-grid fields that vanish on the boundary, else ``fft``;
        ``"dct"`` suits fields whose interior is a cosine series cut to zero at the boundary.
    residual : {"edm", "posterior"}
        Scale of the network's output (:class:`~pdeinv.priors.edm.EDMDenoiser`): EDM's
        :math:`c_\text{out}`, or the Gaussian base's per-mode posterior std (needs a base).
    operator_consistent : bool
        Train the joint prior of a linear PDE in operator-consistent form
        (:mod:`pdeinv.priors.consistent`): the output channel of every denoised estimate is the
        solve of its input channel, in the loss as at sampling, so the loss on the solution also
        trains the input estimate, and the loaded prior satisfies the PDE to solver precision.
    init_from : str
        Start from the weights of this prior (a checkpoint directory or a shipped name) instead of
        a random initialisation: fine-tuning, or continuing a run whose training state is gone.
        The prior's card must describe the model this configuration builds; both the trained
        model and its EMA start from the prior's (EMA) weights. Empty: random initialisation.
    device : str
        ``"cpu"`` or ``"cuda"``; bf16 autocast is used on CUDA only.
    data, command : str
        Provenance recorded in the card.
    progress : bool
        Show a tqdm progress bar on rank 0.
    """

    out: str
    backbone: str = "fno"
    backbone_options: dict = field(default_factory=dict)
    steps: int = 10000
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.0
    warmup: int = 200
    lr_schedule: str = "constant"
    lr_floor: float = 0.02
    ema_halflife: float = 500.0
    ema_rampup: float = 0.1
    grad_clip: float = 1.0
    checkpoint_every: int = 500
    log_every: int = 50
    seed: int = 0
    augment_symmetries: bool = False
    edm: EDMConfig = field(default_factory=EDMConfig)
    gaussian_base: str = "none"
    residual: str = "edm"
    operator_consistent: bool = False
    init_from: str = ""
    device: str = "cpu"
    data: str = ""
    command: str = ""
    progress: bool = True

    def __post_init__(self):
        if isinstance(self.edm, dict):
            self.edm = EDMConfig(**self.edm)
        for name, minimum in _INTEGER_SETTINGS.items():
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
                raise UsageError(f"{name} must be an integer >= {minimum}, got {value!r}")
        for name in _REAL_SETTINGS + ("edm.sigma_data", "edm.p_mean", "edm.p_std"):
            value = getattr(self.edm, name[4:]) if name.startswith("edm.") else getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                raise UsageError(f"{name} must be a finite real number, got {value!r}")
        if self.lr <= 0 or self.ema_halflife <= 0 or self.weight_decay < 0 or self.grad_clip < 0:
            raise UsageError(
                f"lr and ema_halflife must be positive, weight_decay and grad_clip non-negative; got lr={self.lr}, "
                f"ema_halflife={self.ema_halflife}, weight_decay={self.weight_decay}, grad_clip={self.grad_clip}"
            )
        if self.edm.sigma_data <= 0 or self.edm.p_std <= 0:
            raise UsageError(
                f"sigma_data (--sigma-data) and p_std must be positive, got {self.edm.sigma_data} and "
                f"{self.edm.p_std}: EDM's preconditioning divides by them (1.0 suits per-channel standardised fields)"
            )
        if self.lr_schedule not in LR_SCHEDULES:
            raise UsageError(f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}")
        if not 0 <= self.lr_floor <= 1:
            raise UsageError(f"lr_floor must lie in [0, 1], got {self.lr_floor}")
        if self.gaussian_base not in BASE_CHOICES:
            raise UsageError(f"gaussian_base must be one of {BASE_CHOICES}, got {self.gaussian_base!r}")
        if self.residual not in RESIDUALS:
            raise UsageError(f"residual must be one of {RESIDUALS}, got {self.residual!r}")
        if self.residual == "posterior" and self.gaussian_base == "none":
            raise UsageError("residual='posterior' scales the network by the Gaussian base; set gaussian_base")
        if self.backbone not in BACKBONES:
            raise UsageError(f"backbone must be one of {sorted(BACKBONES)}, got {self.backbone!r}")
        if not isinstance(self.backbone_options, dict):
            raise UsageError(f"backbone_options must be a dict of KEY: VALUE, got {self.backbone_options!r}")
        distributed.check_device(self.device)

    def resumable_settings(self) -> dict:
        """The settings a resumed run must share with the run it continues (JSON values)."""
        settings = {k: v for k, v in asdict(self).items() if k not in RESUME_FREE_SETTINGS}
        return json.loads(json.dumps(settings))


def check_options(config_class: type, options: dict, what: str) -> None:
    """Check ``--backbone-option`` values against the fields and types of a configuration dataclass.

    Integers must be ``>= 1`` (``>= 0`` for the channel indices ``*_channel``), reals finite,
    tuples non-empty lists of positive integers.

    Raises
    ------
    UsageError
        For an unknown key (listing the valid ones) or a value of the wrong type or range.
    """
    hints = typing.get_type_hints(config_class)
    valid = sorted(f.name for f in fields(config_class))
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise UsageError(
            f"unknown --backbone-option {', '.join(unknown)} for {what}; valid options: {', '.join(valid)}"
        )
    for name, value in options.items():
        expected = _expected_value(hints[name], minimum=0 if name.endswith("_channel") else 1)
        if expected is not None and not expected[1](value):
            raise UsageError(f"--backbone-option {name}={json.dumps(value)} for {what}: expected {expected[0]}")


def _expected_value(hint, minimum: int):
    """``(description, predicate)`` of the values of a dataclass field annotated ``hint``."""
    def integer(v):
        return isinstance(v, int) and not isinstance(v, bool) and v >= minimum

    if hint is bool:
        return "true or false", lambda v: isinstance(v, bool)
    if hint is int:
        return f"an integer >= {minimum}", integer
    if hint is float:
        return "a finite number", lambda v: isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
    if hint is str:
        return "a string", lambda v: isinstance(v, str)
    if typing.get_origin(hint) is tuple:
        return f"a list of integers >= {minimum}, e.g. [32,64]", lambda v: isinstance(v, list) and v and all(
            integer(c) for c in v
        )
    return None


def default_backbone_options(config: TrainConfig, data: TrainingData) -> dict:
    """Backbone options completed from the data: channel count and (fno) the grid convention."""
    options = {"channels": len(data.channels), **config.backbone_options}
    if config.backbone == "fno" and "grid" not in options and data.grid:
        options["grid"] = "cell" if data.grid == "periodic" else "vertex"
    return options


def build_model(config: TrainConfig, data: TrainingData) -> tuple[EDMDenoiser, dict]:
    """Build the EDM prior to train (initialised from ``config.seed``) and its card skeleton."""
    options = default_backbone_options(config, data)
    bb_config = backbone_config(config.backbone, **options)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        backbone = build_backbone(config.backbone, **options)
    card = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "backbone": {"name": config.backbone, "config": config_dict(bb_config)},
        "preconditioning": {"type": "edm", **asdict(config.edm)},
        "normalization": {"channels": list(data.channels), "mean": data.mean, "std": data.std},
        "resolution": data.resolution,
        "data": data.provenance,
    }
    base = _fit_base(config.gaussian_base, data)
    if base is not None:
        card["preconditioning"]["gaussian_base"] = {"basis": base.basis, "resolution": base.resolution}
        card["preconditioning"]["residual"] = config.residual
    if config.operator_consistent:
        card["operator_consistent"] = consistency_spec(data.provenance.get("attrs", {}), data.channels)
    model = EDMDenoiser(
        backbone,
        config.edm,
        channels=data.channels,
        mean=data.mean,
        std=data.std,
        resolution=data.resolution,
        card=card,
        base=base,
        residual=config.residual,
    )
    return model, card


def initialise_from(model: torch.nn.Module, card: dict, name_or_path: str) -> dict:
    """Load a trained prior's weights into ``model`` (built from ``card``) and say where they came from.

    Returns
    -------
    dict
        ``{"prior": name_or_path, "sha256": ..., "steps": ...}`` for the new card: the starting
        weights' SHA-256 and how many steps produced them.

    Raises
    ------
    UsageError
        If the prior's card describes another model (backbone, preconditioning, channels,
        normalisation or resolution), naming the first difference.
    """
    from pdeinv.priors.checkpoint import read_card, resolve, weights_for_model

    directory = resolve(name_or_path)
    start = read_card(directory)
    for key in ("backbone", "preconditioning", "normalization", "resolution"):
        if _json_copy(start.get(key)) != _json_copy(card.get(key)):
            raise UsageError(
                f"--init-from {name_or_path}: its card's {key} is {json.dumps(start.get(key))}, but this run builds "
                f"{json.dumps(card.get(key))}; train with the prior's settings and data, or start from scratch"
            )
    model.load_state_dict(weights_for_model(model, directory))
    return {
        "prior": str(name_or_path),
        "sha256": file_sha256(directory / WEIGHTS),
        "steps": start.get("training", {}).get("steps"),
        "command": start.get("training", {}).get("command"),
    }


def _fit_base(choice: str, data: TrainingData) -> SpectralGaussianDenoiser | None:
    """The Gaussian base fitted to the training fields, or ``None`` for ``choice="none"``."""
    if choice == "none":
        return None
    basis = choose_basis(data.fields, data.grid) if choice == "auto" else choice
    return SpectralGaussianDenoiser.fit(data.fields, basis)


def learning_rate(config: TrainConfig, step: int) -> float:
    r"""Learning rate of optimiser step ``step`` (0-based).

    Warm-up :math:`\eta_t = \eta\,(t+1)/W` for :math:`t < W`; after it, ``"constant"`` keeps
    :math:`\eta` and ``"cosine"`` gives
    :math:`\eta_t = \eta\,[f + (1-f)\,\tfrac12(1 + \cos\pi u)]`, :math:`u = (t+1-W)/(T-W)`,
    which reaches :math:`f\eta` (``lr_floor``) at the last step :math:`t = T-1`.
    """
    warmup, total = config.warmup, config.steps
    if step < warmup:
        return config.lr * (step + 1) / warmup
    if config.lr_schedule == "constant" or total <= warmup:
        return config.lr
    u = min(1.0, (step + 1 - warmup) / (total - warmup))
    return config.lr * (config.lr_floor + (1.0 - config.lr_floor) * 0.5 * (1.0 + math.cos(math.pi * u)))


def ema_beta(step: int, halflife: float, rampup: float) -> float:
    """EMA decay :math:`2^{-1/h_t}`, :math:`h_t = \\min(h, r\\,t)` after ``step`` (1-based) updates."""
    h = min(halflife, rampup * step) if rampup > 0 else halflife
    return 0.5 ** (1.0 / h) if h > 0 else 0.0


class Trainer:
    """Runs (or resumes) one training run.

    Parameters
    ----------
    config : TrainConfig
        The run's settings.
    data : TrainingData
        Normalised fields in memory.
    """

    def __init__(self, config: TrainConfig, data: TrainingData):
        self.config = config
        self.data = data
        self.env = distributed.setup(config.device)
        if config.batch_size % self.env.world_size:
            raise ValueError(
                f"batch size {config.batch_size} must be divisible by the number of processes {self.env.world_size}"
            )
        self.local_batch = config.batch_size // self.env.world_size
        if len(data.fields) // self.env.world_size < self.local_batch:
            raise ValueError(
                f"{len(data.fields)} samples cannot fill a batch of {self.local_batch} on each of "
                f"{self.env.world_size} process(es); use a smaller --batch-size or more data"
            )
        what = self.options_description(config)
        check_options(self.options_class(config), config.backbone_options, what)
        try:
            self.model, self.card = self.build(config, data)
        except (TypeError, ZeroDivisionError) as err:
            options = config.backbone_options
            raise UsageError(f"the --backbone-option values {options} do not build {what}: {err}") from err
        if config.init_from:
            self.card["init_from"] = initialise_from(self.model, self.card, config.init_from)
        self.model.to(self.env.device)
        self.consistent = consistent_from_card(self.model, self.card) if "operator_consistent" in self.card else None
        if self.consistent is not None and not self.consistent.linear:
            raise ValueError(
                f"--operator-consistent trains the joint prior of a linear PDE (the exact denoiser then solves its "
                f"input estimate); {type(self.consistent.operator).__name__} is nonlinear. Train without it and "
                "sample the projected form (`pdeinv evaluate DIR --consistent`)"
            )
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.net = (
            DistributedDataParallel(self.model, device_ids=[self.env.device] if self.env.device.type == "cuda" else None)
            if self.env.distributed
            else self.model
        )
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
        self.generator = torch.Generator().manual_seed(config.seed * 1_000_003 + self.env.rank)
        self.group = symmetry_group(data.pde, data.resolution) if config.augment_symmetries else None
        self.fields = data.fields.to(self.env.device)
        self.step = 0
        self.epoch = 0
        self.position = 0
        self.wall_s = 0.0
        self.last_checkpoint: int | None = None
        self._order = self._epoch_batches(0)

    def options_class(self, config: TrainConfig) -> type:
        """The configuration dataclass ``config.backbone_options`` override (the backbone's)."""
        return BACKBONES[config.backbone][0]

    def options_description(self, config: TrainConfig) -> str:
        """What the options configure, for error messages."""
        return f"backbone {config.backbone!r}"

    def build(self, config: TrainConfig, data: TrainingData) -> tuple[torch.nn.Module, dict]:
        """The model to train and its card skeleton (an EDM prior; subclasses train other models)."""
        return build_model(config, data)

    def loss(self, x0: torch.Tensor) -> torch.Tensor:
        """The training loss of one batch of normalised fields ``x0`` (the EDM loss; subclasses override)."""
        cfg = self.config
        sigma = sample_training_sigma(len(x0), cfg.edm, self.generator).to(x0.device)
        noise = torch.randn(x0.shape, generator=self.generator).to(x0.device)
        return edm_loss(self._denoiser, x0, sigma, noise, cfg.edm.sigma_data)

    def _denoiser(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        """The trained network's estimate, projected onto the PDE when training operator-consistently."""
        estimate = self.net(x, sigma)
        return estimate if self.consistent is None else self.consistent.project(estimate)

    def _epoch_batches(self, epoch: int) -> torch.Tensor:
        """This rank's batches of sample indices for ``epoch``, shape ``(n_batches, local_batch)``."""
        sampler = DistributedSampler(
            range(len(self.fields)),
            num_replicas=self.env.world_size,
            rank=self.env.rank,
            shuffle=True,
            seed=self.config.seed,
            drop_last=True,
        )
        sampler.set_epoch(epoch)
        indices = torch.tensor(list(sampler))
        n = len(indices) // self.local_batch
        return indices[: n * self.local_batch].reshape(n, self.local_batch)

    def _next_batch(self) -> torch.Tensor:
        if self.position == len(self._order):
            self.epoch += 1
            self.position = 0
            self._order = self._epoch_batches(self.epoch)
        idx = self._order[self.position]
        self.position += 1
        self.batch_index = idx
        x0 = self.fields[idx.to(self.fields.device)]
        return augment(x0, self.group, self.generator) if self.group is not None else x0

    def train_step(self) -> tuple[float, float, float]:
        """One optimiser step; returns ``(loss, gradient norm, learning rate)``."""
        cfg = self.config
        x0 = self._next_batch()
        lr = learning_rate(cfg, self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.env.device.type == "cuda"):
            loss = self.loss(x0)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        max_norm = cfg.grad_clip if cfg.grad_clip > 0 else float("inf")
        grad_norm = float(torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm))
        loss_value = float(loss.detach())
        if not (math.isfinite(loss_value) and math.isfinite(grad_norm)):
            self.optimizer.zero_grad(set_to_none=True)
            what = f"the loss is {loss_value} and the gradient norm {grad_norm}"
            raise self._diverged(self.step + 1, what + "; the weights were not updated", lr)
        self.optimizer.step()
        self.step += 1
        self._update_ema()
        return loss_value, grad_norm, lr

    def _diverged(self, step: int, what: str, lr: float) -> NonFiniteError:
        """The error that stops a diverged run, naming the step and where the last good checkpoint is."""
        cfg = self.config
        if self.last_checkpoint is None:
            kept = f"No checkpoint was written before it (the first is due at step {cfg.checkpoint_every})."
        else:
            kept = f"The last good checkpoint (step {self.last_checkpoint}) is kept in {cfg.out}."
        clip = f"--grad-clip {cfg.grad_clip:g}" if cfg.grad_clip > 0 else "no gradient clipping (--grad-clip 0)"
        return NonFiniteError(
            f"training diverged at step {step}: {what} (learning rate {lr:.3g}, {clip}). {kept} "
            f"Train again with a smaller --lr (now {cfg.lr:g}) or with gradient clipping "
            "(--grad-clip 1), and check that --sigma-data matches the normalised data (1 for standardised fields)"
        )

    @torch.no_grad()
    def _update_ema(self) -> None:
        beta = ema_beta(self.step, self.config.ema_halflife, self.config.ema_rampup)
        for e, p in zip(self.ema.parameters(), self.model.parameters()):
            e.lerp_(p, 1.0 - beta)
        for e, b in zip(self.ema.buffers(), self.model.buffers()):
            e.copy_(b)

    def state_dict(self) -> dict:
        """Everything needed to continue bit for bit (generator states gathered from every rank).

        Besides the tensors, it records what the run computes with: its settings
        (:meth:`TrainConfig.resumable_settings`), its card skeleton (backbone, preconditioning,
        normalisation, resolution, data provenance) and the training file's SHA-256.
        """
        return {
            "step": self.step,
            "epoch": self.epoch,
            "position": self.position,
            "wall_s": self.wall_s,
            "world_size": self.env.world_size,
            "model": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generators": distributed.gather_objects(self.env, self.generator.get_state()),
            "settings": self.config.resumable_settings(),
            "card": _json_copy(self.card),
            "data_sha256": self.data.sha256,
        }

    def check_resumable(self, state: dict) -> None:
        """Raise unless ``state`` was written by a run with this run's data, settings and world size.

        Raises
        ------
        PdeinvError
            Naming every setting that differs with both values, or the two data SHA-256s.
        """
        where = self.config.out
        if state["world_size"] != self.env.world_size:
            raise PdeinvError(
                f"the run in {where} was trained by {state['world_size']} process(es); resume it with the same "
                f"number (now {self.env.world_size})"
            )
        if state.get("data_sha256") != self.data.sha256:
            raise PdeinvError(
                f"the run in {where} was trained on data with SHA-256 {state.get('data_sha256')}, but "
                f"{self.data.provenance.get('path', 'the data given')} has SHA-256 {self.data.sha256}; resume with "
                "the run's training file, or start a new run (--overwrite or another --out)"
            )
        run = {**_flat(state["settings"]), **_flat(_without_path(state["card"]), "card ")}
        now = {**_flat(self.config.resumable_settings()), **_flat(_without_path(_json_copy(self.card)), "card ")}
        changed = [f"{k}: {run.get(k)!r} (run) vs {now.get(k)!r} (now)" for k in sorted(set(run) | set(now))
                   if run.get(k) != now.get(k)]
        if changed:
            raise PdeinvError(
                f"the run in {where} was started with other settings: {'; '.join(changed)}. Resume with the run's "
                "settings, or start a new run (--overwrite or another --out)"
            )

    def load_state_dict(self, state: dict) -> None:
        """Restore a :meth:`state_dict` written by a run with the same data, settings and world size."""
        self.check_resumable(state)
        self.model.load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generators"][self.env.rank])
        self.step, self.epoch, self.position = state["step"], state["epoch"], state["position"]
        self.wall_s = state["wall_s"]
        self.last_checkpoint = self.step
        self._order = self._epoch_batches(self.epoch)

    def card_for_checkpoint(self) -> dict:
        """The card of the current EMA prior (provenance, training command, steps, wall time, device)."""
        device = self.env.device
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
        training = {
            "command": self.config.command,
            "steps": self.step,
            "wall_time_s": round(self.wall_s, 1),
            "device": f"{device.type} ({name}) x {self.env.world_size} process(es)",
            "torch_threads": torch.get_num_threads(),
            "config": asdict(self.config),
        }
        return {**self.card, "training": training}

    def save_checkpoint(self) -> None:
        """Write the EMA prior and the resumable state (rank 0), atomically; all ranks take part.

        Raises
        ------
        NonFiniteError
            If the weights hold NaN or inf (nothing is written; the previous checkpoint stays).
        """
        state = self.state_dict()
        bad = [f"{section} {name}" for section in ("model", "ema") for name, t in state[section].items()
               if (t.is_floating_point() or t.is_complex()) and not bool(torch.isfinite(t).all())]
        if bad:
            what = f"the weights became NaN or infinite ({', '.join(bad[:3])}); they were not saved"
            raise self._diverged(self.step, what, learning_rate(self.config, self.step - 1))
        if self.env.is_main:
            out = Path(self.config.out)
            save_prior(self.ema, out, self.card_for_checkpoint())
            save_training_state(out, state)
        self.last_checkpoint = self.step
        distributed.barrier(self.env)


def _json_copy(value):
    """``value`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def _without_path(card: dict) -> dict:
    """A card without its data path (a moved file is the same data; its SHA-256 is compared)."""
    data = {k: v for k, v in card.get("data", {}).items() if k != "path"}
    return {**card, "data": data}


def _flat(tree: dict, prefix: str = "") -> dict:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}``."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict) and value:
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _lock_output(out: Path):
    """Hold an exclusive lock on ``out`` so that two runs never write the same checkpoints.

    Raises
    ------
    PdeinvError
        If another ``pdeinv train`` process holds the lock.
    """
    handle = open(out / LOCK, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        raise PdeinvError(
            f"another `pdeinv train` is writing to {out}; let it finish (or stop it) before starting or resuming "
            "a run there, or choose another --out"
        ) from None
    return handle


def _open_log(out: Path, resume_step: int | None):
    """Open ``log.csv`` for appending; on resume drop rows past the checkpoint's step."""
    path = out / LOG
    rows = []
    if resume_step is not None and path.is_file():
        with open(path, newline="") as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= resume_step]
    handle = open(path, "w", newline="")
    writer = csv.DictWriter(handle, fieldnames=LOG_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    handle.flush()
    return handle, writer


def check_run_directory(out: Path, resume: bool, overwrite: bool) -> None:
    """Refuse to start a run over another one: ``out`` holding a run needs ``resume`` or ``overwrite``.

    With ``overwrite`` the previous run's checkpoint, state and log are deleted first, so that
    nothing of it can be mistaken for the new run's.

    Raises
    ------
    OutputExistsError
        If ``out`` holds a run (checkpoint, training state or log) and neither flag is set.
    UsageError
        If both flags are set.
    """
    if resume and overwrite:
        raise UsageError("--resume continues the run in --out and --overwrite replaces it; pass only one")
    if resume:
        return
    previous = [p for p in (out / WEIGHTS, out / CARD, out / LOG) if p.is_file()] + state_files(out)
    if previous and not overwrite:
        raise OutputExistsError(
            f"{out} holds a training run ({', '.join(sorted(p.name for p in previous))}); pass --resume to continue "
            "it, --overwrite to replace it, or choose another --out"
        )
    for path in previous:
        path.unlink()


def train(
    config: TrainConfig,
    data: TrainingData,
    resume: bool = False,
    trainer_class: type[Trainer] = Trainer,
    overwrite: bool = False,
) -> torch.nn.Module:
    """Train (or resume) a prior and return its EMA model.

    Parameters
    ----------
    config : TrainConfig
        Settings; ``config.out`` receives checkpoints and the log.
    data : TrainingData
        Normalised training fields.
    resume : bool
        Continue the run in ``config.out`` (its settings and data must be this call's).
    trainer_class : type
        :class:`Trainer` or a subclass training another model (the autoencoder of latent space).
    overwrite : bool
        Replace a run already in ``config.out``.

    Raises
    ------
    FileNotFoundError
        If ``resume`` is set but there is no training state in ``config.out``.
    OutputExistsError
        If ``config.out`` holds a run and neither ``resume`` nor ``overwrite`` is set.
    PdeinvError
        If the run to resume used other settings or data, or its state is corrupt; or another
        training process is writing to ``config.out``.
    NonFiniteError
        If the loss, a gradient or the weights become NaN or infinite (the run stops before the
        weights are updated; the last checkpoint stays on disk).
    """
    out = Path(config.out)
    lock = None
    if int(os.environ.get("RANK", "0")) == 0:
        if out.exists() and not out.is_dir():
            raise UsageError(f"--out {out} is a file; training writes a directory")
        out.mkdir(parents=True, exist_ok=True)
        lock = _lock_output(out)
    try:
        if lock is not None:
            check_run_directory(out, resume, overwrite)
        return _run(config, data, resume, out, trainer_class)
    finally:
        if lock is not None:
            lock.close()


def _run(config: TrainConfig, data: TrainingData, resume: bool, out: Path, trainer_class: type[Trainer]):
    from tqdm.auto import tqdm

    trainer = trainer_class(config, data)
    if resume:
        trainer.load_state_dict(read_training_state(out))
    is_main = trainer.env.is_main
    if is_main:
        log_handle, writer = _open_log(out, trainer.step if resume else None)
    bar = tqdm(total=config.steps, initial=trainer.step, disable=not (config.progress and is_main), unit="step")
    losses, t_last, step_last = [], time.perf_counter(), trainer.step
    try:
        while trainer.step < config.steps:
            loss, grad_norm, lr = trainer.train_step()
            losses.append(loss)
            bar.update(1)
            done = trainer.step == config.steps
            if trainer.step % config.log_every == 0 or trainer.step % config.checkpoint_every == 0 or done:
                now = time.perf_counter()
                trainer.wall_s += now - t_last
                per_step = (now - t_last) / max(trainer.step - step_last, 1)
                t_last, step_last = now, trainer.step
                mean_loss = sum(losses) / len(losses)
                losses = []
                bar.set_postfix(loss=f"{mean_loss:.4f}", s_per_step=f"{per_step:.3f}")
                if is_main:
                    writer.writerow(
                        dict(zip(LOG_FIELDS, (trainer.step, trainer.epoch, f"{mean_loss:.6g}", f"{grad_norm:.4g}",
                                              f"{lr:.4g}", f"{per_step:.4f}", f"{trainer.wall_s:.1f}")))
                    )
                    log_handle.flush()
            if trainer.step % config.checkpoint_every == 0 or done:
                trainer.save_checkpoint()
    finally:
        bar.close()
        if is_main:
            log_handle.close()
        distributed.teardown(trainer.env)
    return trainer.ema
