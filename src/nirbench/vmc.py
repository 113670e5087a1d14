"""The VMC training loop: sample -> local energy matrix -> (minSR) -> Adam -> log -> checkpoint.

One *iteration* draws a batch with the configured sampler (exact, MCMC or NIR), estimates the
mean local energy matrix ``<E_loc>`` (``K x K``; ``K = 1`` is the single-state case), and, if
the sampler allows it (NIR's adaptive rule: ``efficiency >= alpha_eff``), updates the NQS with
the gradient of ``tr <E_loc>``, preconditioned by minSR unless disabled. ``steps`` counts NQS
updates; iterations in which NIR only retrains its proposal are logged with ``nqs_updated = 0``.

Every iteration writes one row of the steps CSV (columns :data:`STEP_COLUMNS` plus
``e_0 .. e_{K-1}``); the run ends with a final evaluation on ``eval_batch`` samples, written as
a one-row summary CSV.

With ``sampling_power = p < 1`` (beyond the paper) the sampler targets ``|Psi|^(2p)`` instead of
``|Psi|^2`` (:class:`TemperedLogProb`) and every sample is reweighted by ``|Psi|^(2(1 - p))``,
self-normalised (:func:`reweight_tempered`): an importance-sampling estimate of the same
``|Psi|^2`` averages, from a broader distribution that also visits configurations of small
amplitude. All randomness derives from ``seed``: iteration ``i`` uses
``fold_in(key, i)``, so a run resumed from a checkpoint reproduces the uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import math
import os
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pandas as pd
import yaml
from tqdm.auto import tqdm

from nirbench.estimators import (
    energy_levels,
    final_drift,
    is_converged,
    local_energy_matrices,
    mean_energy_matrix,
    standard_error,
)
from nirbench.evaluation import evaluate, evaluation_columns, sampler_jsd
from nirbench.exact import sector_dimension
from nirbench.hamiltonians import make_hamiltonian
from nirbench.io import (
    CHECKPOINT_META,
    read_checkpoint,
    read_checkpoint_meta,
    write_checkpoint,
    write_csv_atomically,
)
from nirbench.minsr import (
    jacobian_of_log_psi,
    layerwise_natural_gradient_tree,
    make_optimizer,
    natural_gradient_tree,
    supports_layerwise_minsr,
)
from nirbench.models import NETS, batched_log_prob, build_nqs
from nirbench.models.symmetry import AVERAGES, OUTPUT_HEADS
from nirbench.samplers import SAMPLERS, make_sampler
from nirbench.samplers.base import log_effective_sample_size
from nirbench.samplers.exact import check_exact_size

STEP_COLUMNS = [
    "step", "nqs_step", "energy", "energy_error", "energy_sigma", "variance",
    "ess", "efficiency", "n_proposed", "acceptance", "nqs_updated", "step_scale", "predicted_efficiency",
    "seconds", "jsd", "jsd_exact",
]  # fmt: skip


@dataclass
class VMCConfig:
    """Every option of a VMC run (the keys of the ``--config`` YAML). Defaults: paper table A1.

    The MLP width follows table A1 (128); the paper's text says 256 (section 4.2).
    """

    model: str
    lx: int
    ly: int
    bc: str
    g: float | None = None
    j2: float | None = None
    states: int = 1
    net: str = "mlp"
    width: int = 128
    depth: int = 4
    channels: int = 16
    blocks: int = 4
    symmetries: bool = True
    symmetry_average: str = "log"
    output_head: str = "log"
    marshall_sign: bool = False
    sampler: str = "nir"
    batch: int = 512
    steps: int = 10000
    lr: float = 1e-3
    lr_final: float | None = None
    lr_warmup: int = 0
    optimizer: str = "adam"
    minsr: bool = True
    diag_shift: float = 1e-4
    seed: int = 0
    # NIR
    proposal_dim: int = 32
    proposal_layers: int = 4
    proposal_heads: int = 4
    proposal_lr: float = 1e-3
    proposal_train_steps: int = 1
    proposal_retrain_steps: int | None = None
    proposal_training: str = "batch"
    gate_smoothing: float = 0.0
    trust_region: float | None = None
    trust_floor: float = 0.0
    proposal_dtype: str = "float32"
    p_floor: float = 1e-4
    alpha_ess: float = 2.0
    alpha_eff: float = 0.1
    nir_fixed_batches: int | None = None
    nir_mode: str = "resample"
    nir_loss: str = "forward"
    symmetrize_proposal: bool = False
    sampling_power: float = 1.0
    max_retries: int = 200
    max_minutes: float | None = None
    # MCMC
    mcmc_warmup: int = 640
    mcmc_thinning: int = 10
    mcmc_chains: int | None = None
    # evaluation, diagnostics, bookkeeping
    eval_batch: int = 4096
    jsd_every: int = 0
    jsd_samples: int = 25600
    checkpoint_every: int = 100
    reference: str | None = None
    extra: dict = field(default_factory=dict, repr=False)

    #: one line of help per option, shown by ``nirbench vmc --help``
    HELP: ClassVar[dict[str, str]] = {
        "model": "Hamiltonian: tfi or j1j2", "lx": "lattice length in x", "ly": "lattice length in y",
        "bc": "boundary conditions: open or periodic", "g": "TFI transverse field (>= 0)",
        "j2": "J1-J2 coupling J2/J1 (default 0.5)", "states": "number K of lowest states (multi-state determinant)",
        "net": "single-state network: mlp or rescnn", "width": "MLP hidden width (table A1: 128)",
        "depth": "MLP hidden layers", "channels": "ResCNN channels", "blocks": "ResCNN residual blocks",
        "symmetries": "impose the model's symmetries (J1-J2: spin flip, lattice symmetries)",
        "symmetry_average": "what the symmetrisation averages: log (log psi, paper) or amplitude (psi, a projector)",
        "output_head": "what the network's two outputs are: log (Re, Im log psi; paper) or signed (a real amplitude exp(u) (1 + v), beyond the paper)",
        "marshall_sign": "J1-J2: multiply each network by the Marshall sign (a sign prior, beyond the paper)",
        "sampler": "exact, mcmc or nir", "batch": "samples per step", "steps": "number of NQS updates",
        "lr": "NQS learning rate (of the optimizer: Adam or SGD)",
        "lr_final": "if set, the NQS learning rate decays from lr to lr_final over the steps (cosine)",
        "lr_warmup": "NQS updates over which the learning rate rises linearly from 0 to lr (0: none)",
        "optimizer": "adam or sgd, applied to the (minSR) direction",
        "minsr": "precondition with minSR", "diag_shift": "minSR diagonal shift (> 0)", "seed": "random seed",
        "proposal_dim": "NIR proposal embedding dimension", "proposal_layers": "NIR proposal Transformer layers",
        "proposal_heads": "NIR proposal attention heads", "proposal_lr": "NIR proposal learning rate",
        "proposal_train_steps": "NIR proposal Adam steps per sampled batch (paper: 1)",
        "proposal_retrain_steps": "NIR proposal Adam steps in a call whose efficiency is below alpha_eff (default: proposal_train_steps)",
        "proposal_training": "NIR proposal training data: batch (the returned batch, paper) or proposals (fresh minibatches drawn from the whole weighted proposal set)",
        "gate_smoothing": "NIR: the gate compares a moving average of the efficiency with this weight on the past, in [0, 1) (0: paper)",
        "trust_region": "NIR: halve an NQS step until its predicted efficiency on the current proposals is >= this fraction of the current one, in (0, 1] (unset: off; other samplers ignore it, like every NIR option)",
        "trust_floor": "NIR trust region: nor below this efficiency (nor below the current one, if that is lower), in [0, 1) (0: no floor)",
        "proposal_dtype": "NIR proposal precision: float32 or float64 (the importance weights use the NQS precision)",
        "p_floor": "floor on every conditional probability of the proposal, in [0, 0.5)",
        "alpha_ess": "NIR: propose until ESS >= alpha_ess * batch", "alpha_eff": "NIR: update the NQS only if ESS/n_proposed >= alpha_eff",
        "nir_fixed_batches": "NIR: a fixed number of proposal batches per step (disables the adaptive rule)",
        "nir_mode": "NIR: resample, or importance (weighted proposals)", "nir_loss": "NIR proposal loss: forward or backward KL",
        "symmetrize_proposal": "NIR: symmetry-augmented proposal",
        "sampling_power": "p in (0, 1]: every sampler targets |Psi|^(2p) and reweights each sample by |Psi|^(2(1-p)) (1: plain |Psi|^2; beyond the paper)",
        "max_retries": "NIR: stop after this many iterations in a row without an NQS update",
        "max_minutes": "stop training after this many minutes of iterations (resumed runs included), then evaluate",
        "mcmc_warmup": "MCMC warm-up steps per sampling call", "mcmc_thinning": "MCMC steps between samples",
        "mcmc_chains": "MCMC chains (default: one per sample)", "eval_batch": "samples in the final evaluation",
        "jsd_every": "measure the JSD to the exact |Psi|^2 every this many steps (0: never)",
        "jsd_samples": "samples per JSD measurement", "checkpoint_every": "checkpoint every this many iterations",
        "reference": "CSV of exact (ed) or extrapolated (extrapolate) energies of the same system",
    }  # fmt: skip

    @classmethod
    def from_dict(cls, values: dict) -> VMCConfig:
        """Build from a mapping; unknown keys and wrong types raise ``ValueError`` naming them."""
        known = {f.name: f for f in fields(cls) if f.name != "extra"}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown VMC option(s) {unknown}; allowed: {sorted(known)}")
        missing = [name for name in ("model", "lx", "ly", "bc") if values.get(name) is None]
        if missing:
            raise ValueError(f"missing required VMC option(s) {missing}")
        config = cls(**values)
        config.validate()
        return config

    @classmethod
    def from_yaml(cls, path: str | os.PathLike) -> VMCConfig:
        return cls.from_dict(read_options_file(path))

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        values.pop("extra")
        return values

    def validate(self) -> None:
        """Check types and ranges before any computation."""
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "extra" or value is None:
                continue
            kind = {"int": int, "float": (int, float), "bool": bool, "str": str}.get(
                str(f.type).split(" |")[0]
            )
            if kind is not None and (not isinstance(value, kind) or (kind is int and isinstance(value, bool))):
                raise ValueError(f"VMC option {f.name!r} must be of type {f.type!s}, got {value!r}")
        if self.net not in NETS:
            raise ValueError(f"unknown net {self.net!r}; choose one of {NETS}")
        if self.symmetry_average not in AVERAGES:
            raise ValueError(f"unknown symmetry_average {self.symmetry_average!r}; choose one of {AVERAGES}")
        if self.output_head not in OUTPUT_HEADS:
            raise ValueError(f"unknown output_head {self.output_head!r}; choose one of {OUTPUT_HEADS}")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {SAMPLERS}")
        if not self.diag_shift > 0:
            raise ValueError(f"diag_shift must be > 0, got {self.diag_shift}")
        if self.states < 1:
            raise ValueError(f"the number of states K must be >= 1, got {self.states}")
        for name in ("batch", "steps", "eval_batch", "checkpoint_every", "max_retries", "proposal_train_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.lr_final is not None and not 0 < self.lr_final <= self.lr:
            raise ValueError(f"lr_final must be in (0, lr = {self.lr}], got {self.lr_final}")
        if not 0 <= self.lr_warmup < self.steps:
            raise ValueError(f"lr_warmup must be in [0, steps = {self.steps}), got {self.lr_warmup}")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise ValueError(f"max_minutes must be > 0, got {self.max_minutes}")
        if not 0 < self.sampling_power <= 1:
            raise ValueError(f"sampling_power must be in (0, 1], got {self.sampling_power}")
        if self.trust_region is not None and not 0 < self.trust_region <= 1:
            raise ValueError(f"trust_region must be in (0, 1], got {self.trust_region}")
        if not 0 <= self.trust_floor < 1:
            raise ValueError(f"trust_floor must be in [0, 1), got {self.trust_floor}")
        if not 0 <= self.gate_smoothing < 1:
            raise ValueError(f"gate_smoothing must be in [0, 1), got {self.gate_smoothing}")

    def learning_rate(self) -> float | optax.Schedule:
        """The NQS learning rate as a function of the update count.

        ``lr``; or, with ``lr_final``, a cosine decay from ``lr`` to ``lr_final`` that ends at
        ``steps``; with ``lr_warmup = W > 0`` either is preceded by a linear rise from 0 to ``lr``
        over the first ``W`` updates (the decay then spans the remaining ``steps - W``).
        """
        if self.lr_warmup == 0:
            if self.lr_final is None:
                return self.lr
            return optax.cosine_decay_schedule(self.lr, self.steps, alpha=self.lr_final / self.lr)
        return optax.warmup_cosine_decay_schedule(
            0.0, self.lr, self.lr_warmup, self.steps, end_value=self.lr if self.lr_final is None else self.lr_final
        )


def read_options_file(path: str | os.PathLike) -> dict:
    """The mapping of VMC options in the YAML file ``path`` (keys not checked here).

    ``ValueError`` naming the file when it is missing, not YAML, or not a mapping.
    """
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"config file {path} does not exist")
    try:
        values = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, UnicodeDecodeError) as error:
        raise ValueError(f"config file {path} is not valid YAML ({str(error).splitlines()[0]})") from error
    if values is None:
        return {}
    if not isinstance(values, dict):
        raise ValueError(f"config file {path} must be a mapping of VMC options, got a {type(values).__name__}")  # noqa: TRY004 (bad input)
    return values


def load_reference(path: str | os.PathLike, hamiltonian, n_states: int) -> np.ndarray:
    """The ``n_states`` lowest reference energies from an ``ed`` or ``extrapolate`` CSV.

    The file must describe the same system: where it has ``model/lx/ly/bc/g/j2`` columns they
    must match ``hamiltonian.describe()``, otherwise ``ValueError``.
    """
    if not Path(path).is_file():
        raise ValueError(f"reference file {path} does not exist")
    try:
        frame = pd.read_csv(path)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as error:
        raise ValueError(f"reference file {path} is not a CSV of energies ({type(error).__name__})") from error
    for key, expected in hamiltonian.describe().items():
        if key not in frame.columns or expected is None:
            continue
        found = frame[key].dropna().unique()
        if len(found) == 0:
            continue
        same = all(
            (math.isclose(float(v), float(expected)) if isinstance(expected, float) else str(v) == str(expected))
            for v in found
        )
        if not same:
            raise ValueError(
                f"reference {path} is for {key}={found.tolist()}, but this run has {key}={expected!r}"
            )
    column = "energy" if "energy" in frame.columns else "energy_extrapolated"
    if column not in frame.columns:
        raise ValueError(f"reference {path} has neither an 'energy' nor an 'energy_extrapolated' column")
    if "chi" in frame.columns:
        raise ValueError(f"reference {path} is a raw DMRG scan; pass the output of `nirbench extrapolate`")
    energies = frame.sort_values("state")[column].to_numpy(dtype=float)
    if len(energies) < n_states:
        raise ValueError(f"reference {path} has {len(energies)} levels, the run needs K = {n_states}")
    return np.sort(energies)[:n_states]


def count_parameters(module) -> int:
    """Number of real trainable scalars (inexact-array leaves) of an Equinox module."""
    return int(sum(leaf.size for leaf in jax.tree_util.tree_leaves(eqx.filter(module, eqx.is_inexact_array))))


class NonFiniteError(RuntimeError):
    """Raised when an energy or an update becomes NaN or infinite."""


class OrphanedError(RuntimeError):
    """Raised when the process named by ``NIRBENCH_STOP_WITH_PID`` (the pipeline that started the
    run) has gone: the run checkpoints and stops instead of running on unattended."""


#: environment variable: stop (after a checkpoint) once the process with this PID has gone
STOP_WITH_PID = "NIRBENCH_STOP_WITH_PID"


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _trace_local_energy(nqs, hamiltonian, configs):
    """``(B, K, K)`` local energy matrices and their traces ``(B,)``."""
    e_loc = local_energy_matrices(nqs, hamiltonian, configs)
    return e_loc, jnp.trace(e_loc, axis1=1, axis2=2)


@eqx.filter_jit
def estimate(nqs, hamiltonian, configs, weights):
    """Mean energy matrix ``(K, K)``, its eigenvalues, the traces ``(B,)`` and their variance."""
    e_loc, eps = _trace_local_energy(nqs, hamiltonian, configs)
    mean_matrix = mean_energy_matrix(e_loc, weights)
    variance = jnp.sum(weights * jnp.abs(eps - jnp.sum(weights * eps)) ** 2)
    return mean_matrix, energy_levels(mean_matrix), eps, variance


class TemperedLogProb(eqx.Module):
    """The samplers' target ``log_prob_fn`` for ``sampling_power = p``: ``p log |Psi|^2``, shape ``(B,)``.

    A module with a static ``power`` rather than a closure, so that equal powers compare equal
    and the jitted samplers compile once.
    """

    power: float = eqx.field(static=True)

    def __call__(self, nqs, configs: jax.Array) -> jax.Array:
        return self.power * batched_log_prob(nqs, configs)


@eqx.filter_jit
def reweight_tempered(nqs, configs, weights, power):
    """Weights ``(B,)`` of a batch drawn for ``|Psi|^(2 power)``, turned into ``|Psi|^2`` weights.

    ``weights_b |Psi(s_b)|^(2 (1 - power))``, normalised to sum to 1 (``configs`` ``(B, K, N)``).
    """
    log_w = jnp.log(weights) + (1.0 - power) * batched_log_prob(nqs, configs)
    return jax.nn.softmax(log_w)


def _single_log_psi(nqs, config):
    return nqs.log_psi(config)


def energy_gradient(nqs, configs, weights, eps):
    """Gradient of ``tr <E_loc>`` w.r.t. the real parameters: ``2 Re sum_b w_b conj(O_b) (eps_b - <eps>)``.

    ``configs`` ``(B, K, N)``, self-normalised ``weights`` ``(B,)``, ``eps = tr E_loc`` ``(B,)``
    (paper eq. 6 with the multi-state local energy). Returns a pytree shaped like the NQS.
    """
    eps_c = jax.lax.stop_gradient(eps - jnp.sum(weights * eps))

    @eqx.filter_grad
    def surrogate(model):
        log_psi = jax.vmap(model.log_psi)(configs)
        return 2 * jnp.real(jnp.sum(weights * jnp.conj(log_psi) * eps_c))

    return surrogate(nqs)


@eqx.filter_jit
def nqs_updates(nqs, opt_state, optimizer, configs, weights, eps, diag_shift, use_minsr):
    """One NQS step from a weighted batch; returns ``(updates, opt_state, finite)`` (``updates`` a
    pytree like the NQS, to be applied with ``eqx.apply_updates``, possibly scaled).

    With minSR the direction is the natural gradient of ``tr <E_loc>``; otherwise the plain
    gradient ``2 Re <conj(O_c) eps_c>`` (paper eq. 6), via a surrogate whose real-parameter
    gradient it is. When minSR's ``(2 Ns, 2 Ns)`` form is the cheap one (``2 Ns <= P``) and the
    networks allow it (plain MLPs), the direction comes from the Jacobian-free
    :func:`~nirbench.minsr.layerwise_natural_gradient_tree`; otherwise from the per-sample Jacobian.
    """
    params = eqx.filter(nqs, eqx.is_inexact_array)
    if use_minsr and supports_layerwise_minsr(nqs) and 2 * configs.shape[0] <= count_parameters(nqs):
        direction = layerwise_natural_gradient_tree(nqs, configs, eps, weights, diag_shift)
    elif use_minsr:
        jacobian = jacobian_of_log_psi(_single_log_psi, nqs, configs)
        direction = natural_gradient_tree(nqs, jacobian, eps, weights, diag_shift)
    else:
        direction = energy_gradient(nqs, configs, weights, eps)
    updates, opt_state = optimizer.update(direction, opt_state, params)
    flat = jax.tree_util.tree_leaves(eqx.filter(updates, eqx.is_inexact_array))
    finite = jnp.all(jnp.array([jnp.all(jnp.isfinite(leaf)) for leaf in flat]))
    return updates, opt_state, finite


def update(nqs, opt_state, optimizer, configs, weights, eps, diag_shift, use_minsr):
    """One NQS update from a weighted batch (:func:`nqs_updates`, applied): ``(nqs, opt_state, finite)``."""
    updates, opt_state, finite = nqs_updates(nqs, opt_state, optimizer, configs, weights, eps, diag_shift, use_minsr)
    return eqx.apply_updates(nqs, updates), opt_state, finite


#: the trust region halves a step at most this many times (smallest scale 2^-8)
MAX_STEP_HALVINGS = 8


@eqx.filter_jit
def predicted_efficiency(log_prob_fn, nqs, configs, log_q, n_proposed):
    """``ESS / n_proposed`` of the weights ``log_prob_fn(nqs, configs) - log_q`` over a proposal set
    ``(M, K, N)``, ``(M,)``: the efficiency the same proposals would have for ``nqs``."""
    return jnp.exp(log_effective_sample_size(log_prob_fn(nqs, configs) - log_q)) / n_proposed


def sampler_options(c: VMCConfig) -> dict:
    """The keyword arguments of ``make_sampler(c.sampler, ...)`` from the run options ``c``."""
    if c.sampler == "nir":
        return {
            "n_states": c.states, "alpha_ess": c.alpha_ess, "alpha_eff": c.alpha_eff, "embed_dim": c.proposal_dim, "n_heads": c.proposal_heads,
            "n_layers": c.proposal_layers, "p_floor": c.p_floor, "learning_rate": c.proposal_lr,
            "train_steps": c.proposal_train_steps, "loss": c.nir_loss, "retrain_steps": c.proposal_retrain_steps,
            "training": c.proposal_training, "gate_smoothing": c.gate_smoothing,
            "mode": c.nir_mode, "adaptive": c.nir_fixed_batches is None, "n_proposal_batches": c.nir_fixed_batches,
            "symmetrize": c.symmetrize_proposal, "proposal_dtype": c.proposal_dtype,
        }  # fmt: skip
    if c.sampler == "mcmc":
        return {"n_chains": c.mcmc_chains, "n_warmup": c.mcmc_warmup, "thinning": c.mcmc_thinning}
    return {}


class VMCRun:
    """A VMC run: the Hamiltonian, NQS, sampler, optimiser and their states.

    Use :meth:`train` (which can resume from a checkpoint) then :meth:`evaluate`.
    """

    def __init__(self, config: VMCConfig):
        config.validate()
        self.config = config
        self.hamiltonian = make_hamiltonian(config.model, config.lx, config.ly, config.bc, g=config.g, j2=config.j2)
        n_configs = sector_dimension(self.hamiltonian)  # counted, not enumerated
        if config.states > n_configs:
            raise ValueError(f"K = {config.states} exceeds the number of configurations ({n_configs})")
        self.reference = (
            load_reference(config.reference, self.hamiltonian, config.states) if config.reference else None
        )
        if config.jsd_every:
            try:
                check_exact_size(config.states, self.hamiltonian.n_sites)
            except ValueError as error:
                raise ValueError(f"jsd_every needs the exact |Psi|^2: {str(error).split('; use')[0]}; "
                                 "set jsd_every to 0 for this system") from error
        key = jax.random.PRNGKey(config.seed)
        model_key, sampler_key, self.key = jax.random.split(key, 3)
        self.nqs = build_nqs(
            self.hamiltonian, config.net, config.states, width=config.width, depth=config.depth,
            channels=config.channels, n_blocks=config.blocks, symmetries=config.symmetries,
            marshall_sign=config.marshall_sign, symmetry_average=config.symmetry_average,
            output_head=config.output_head, key=model_key,
        )  # fmt: skip
        self.sampler, self.sampler_state = self.make_sampler(config.sampler, config.batch, sampler_key)
        self.log_prob_fn = batched_log_prob if config.sampling_power == 1.0 else TemperedLogProb(config.sampling_power)
        self.optimizer = make_optimizer(config.optimizer, config.learning_rate())
        self.opt_state = self.optimizer.init(eqx.filter(self.nqs, eqx.is_inexact_array))
        self.iteration = 0
        self.nqs_step = 0
        self.rows: list[dict] = []

    def make_sampler(self, name: str, batch: int, key):
        """A sampler ``name`` drawing ``batch`` samples per call, configured by this run's options,
        and its fresh state: ``(sampler, state)``. ``ValueError`` when it cannot serve the system."""
        options = sampler_options(dataclasses.replace(self.config, sampler=name))
        sampler = make_sampler(name, self.hamiltonian, batch, **options)
        return sampler, sampler.init(key, self.config.states, self.hamiltonian.n_sites)

    @classmethod
    def from_checkpoint(cls, directory: str | os.PathLike) -> VMCRun:
        """The run saved in ``directory`` (its config from ``meta.json``, its state restored).

        ``ValueError`` naming the file when the checkpoint is missing or cannot be read.
        """
        meta = read_checkpoint_meta(directory)
        if meta is None:
            raise ValueError(f"no checkpoint in {directory} ({CHECKPOINT_META} is missing)")
        try:
            config = VMCConfig.from_dict(meta["config"])
        except (TypeError, ValueError) as error:
            raise ValueError(f"{Path(directory) / CHECKPOINT_META}: not a nirbench checkpoint ({error})") from error
        run = cls(config)
        run.load_checkpoint(directory)
        return run

    # ------------------------------------------------------------------ checkpoints
    def _state_tree(self):
        return (self.nqs, self.opt_state, self.sampler_state, self.key)

    def save_checkpoint(self, directory: str | os.PathLike) -> None:
        """Write the NQS, optimiser, sampler state, key and log rows as one checkpoint
        (:func:`nirbench.io.write_checkpoint`: a kill never leaves a mixed or partial one)."""
        meta = {"iteration": self.iteration, "nqs_step": self.nqs_step, "config": self.config.to_dict()}
        write_checkpoint(directory, self._state_tree(), meta, pd.DataFrame(self.rows))

    def load_checkpoint(self, directory: str | os.PathLike) -> bool:
        """Restore from ``directory`` if it holds a checkpoint; return whether it did.

        ``ValueError`` naming the file when the checkpoint is damaged (checksums), was written by
        another configuration, or cannot be read; nothing is restored then.
        """
        meta = read_checkpoint_meta(directory)
        if meta is None:
            return False
        if meta["config"] != self.config.to_dict():
            raise ValueError(f"checkpoint in {directory} was written by a different configuration")
        tree, meta, rows = read_checkpoint(directory, self._state_tree())
        (self.nqs, self.opt_state, self.sampler_state, self.key) = tree
        self.iteration, self.nqs_step = meta["iteration"], meta["nqs_step"]
        self.rows = rows.to_dict("records")
        return True

    # ------------------------------------------------------------------ training
    def draw(self, sampler, state, key):
        """One call of ``sampler`` on the current NQS from ``state``: ``(batch, state, stats)``.

        With ``sampling_power < 1`` the batch's weights are turned into ``|Psi|^2`` weights.
        """
        batch, state, stats = sampler.sample(self.log_prob_fn, self.nqs, state, key)
        if self.config.sampling_power != 1.0:
            weights = reweight_tempered(self.nqs, batch.configs, batch.weights, self.config.sampling_power)
            batch = batch._replace(weights=weights)
        return batch, state, stats

    def step(self) -> dict:
        """One iteration: sample, estimate, maybe update. Returns the logged row."""
        c = self.config
        start = time.perf_counter()
        key = jax.random.fold_in(self.key, self.iteration)
        sample_key, jsd_key = jax.random.split(key)
        state_before = self.sampler_state
        batch, self.sampler_state, stats = self.draw(self.sampler, self.sampler_state, sample_key)
        mean_matrix, levels, eps, variance = estimate(self.nqs, self.hamiltonian, batch.configs, batch.weights)
        energy = float(jnp.real(jnp.trace(mean_matrix)))
        if not math.isfinite(energy):
            raise NonFiniteError(f"the energy became non-finite at iteration {self.iteration}")
        sigma, n_effective = standard_error(np.asarray(eps), batch)
        jsd = jsd_exact = math.nan
        if c.jsd_every and self.iteration % c.jsd_every == 0:  # the sampler that drew this batch, frozen
            jsd, jsd_exact = sampler_jsd(self, state_before, jsd_key, c.jsd_samples)
        updated = bool(stats["nqs_update"])
        scale = predicted = math.nan
        if updated:
            updates, opt_state, finite = nqs_updates(
                self.nqs, self.opt_state, self.optimizer, batch.configs, batch.weights, eps, c.diag_shift, c.minsr
            )
            if not bool(finite):
                raise NonFiniteError(f"the NQS update became non-finite at iteration {self.iteration}")
            scale, predicted = self._trust_region(updates, batch, stats)
            scaled = updates if scale == 1.0 else jax.tree_util.tree_map(lambda u: scale * u, updates)
            self.nqs, self.opt_state = eqx.apply_updates(self.nqs, scaled), opt_state
            self.nqs_step += 1
        row = {
            "step": self.iteration, "nqs_step": self.nqs_step, "energy": energy,
            "energy_error": energy - self.reference.sum() if self.reference is not None else math.nan,
            "energy_sigma": sigma, "variance": float(variance),
            # Metropolis: the batch's effective size from its autocorrelation time
            "ess": n_effective if c.sampler == "mcmc" else stats["ess"], "efficiency": stats["efficiency"],
            "n_proposed": stats["n_proposed"], "acceptance": stats["acceptance"], "nqs_updated": int(updated),
            "step_scale": scale, "predicted_efficiency": predicted,
            "seconds": time.perf_counter() - start, "jsd": jsd, "jsd_exact": jsd_exact,
        }  # fmt: skip
        row.update({f"e_{k}": float(e) for k, e in enumerate(np.asarray(levels))})
        self.rows.append(row)
        self.iteration += 1
        return row

    def _trust_region(self, updates, batch, stats) -> tuple[float, float]:
        """The scale ``2^-h`` applied to an NQS step, and the efficiency predicted for it.

        Without ``trust_region`` (or a proposal set): ``(1, nan)``. Otherwise the step is halved
        (at most :data:`MAX_STEP_HALVINGS` times) until the efficiency of this call's proposals
        re-weighted for the new NQS, :func:`predicted_efficiency`, is at least the bound
        ``max(trust_region * e, min(e, trust_floor))`` with ``e`` this call's efficiency: a step may
        lose a fraction ``1 - trust_region`` of the efficiency, but not take it below
        ``trust_floor`` (nor lower it at all once it is there), so the NQS slows down to the pace
        at which the proposal follows. If even the smallest step falls short, the smallest is taken.
        """
        if self.config.trust_region is None or batch.proposal_configs is None:
            return 1.0, math.nan
        efficiency = stats["efficiency"]
        bound = max(self.config.trust_region * efficiency, min(efficiency, self.config.trust_floor))
        scale = 1.0
        for halving in range(MAX_STEP_HALVINGS + 1):
            trial = eqx.apply_updates(self.nqs, jax.tree_util.tree_map(lambda u, s=scale: s * u, updates))
            predicted = float(predicted_efficiency(
                self.log_prob_fn, trial, batch.proposal_configs, batch.proposal_log_q, stats["n_proposed"]
            ))  # fmt: skip
            if predicted >= bound or halving == MAX_STEP_HALVINGS:
                return scale, predicted
            scale /= 2
        raise AssertionError("unreachable")

    def train(self, checkpoint_dir=None, progress: bool = True) -> str:
        """Run until ``steps`` NQS updates; return ``"completed"``, ``"stalled"`` or ``"time_limit"``.

        ``stalled``: NIR's efficiency stayed below ``alpha_eff`` for ``max_retries`` iterations in
        a row (the paper's table 1 rows that were "not completed"). ``time_limit``: the iterations
        so far (``seconds`` of every row, resumed ones included) took ``max_minutes``; where the
        limit cuts a run depends on the machine's speed, so such a run is not reproducible step
        for step. Checkpoints are written every ``checkpoint_every`` iterations and at the end,
        only from finite states.
        """
        c = self.config
        retries = 0
        watched = int(os.environ[STOP_WITH_PID]) if os.environ.get(STOP_WITH_PID, "").isdigit() else None
        bar = tqdm(total=c.steps, initial=self.nqs_step, disable=not progress, desc="VMC", unit="step")
        status = "completed"
        try:
            while self.nqs_step < c.steps:
                row = self.step()
                retries = 0 if row["nqs_updated"] else retries + 1
                bar.update(row["nqs_updated"])
                # NIR iterations that only retrain the proposal do not advance the bar: they are counted here
                bar.set_postfix(energy=f"{row['energy']:.6f}", eff=f"{row['efficiency']:.2f}",
                                iteration=self.iteration, retraining=retries)
                if retries >= c.max_retries:
                    status = "stalled"
                    break
                if c.max_minutes is not None and self.training_seconds() >= 60.0 * c.max_minutes:
                    status = "time_limit"
                    break
                if checkpoint_dir and self.iteration % c.checkpoint_every == 0:
                    self.save_checkpoint(checkpoint_dir)
                if watched is not None and not _process_alive(watched):
                    if checkpoint_dir:
                        self.save_checkpoint(checkpoint_dir)
                    raise OrphanedError(f"process {watched} ({STOP_WITH_PID}) has gone; stopped at iteration "
                                        f"{self.iteration} after a checkpoint")
        finally:
            bar.close()
        if checkpoint_dir:
            self.save_checkpoint(checkpoint_dir)
        return status

    def training_seconds(self) -> float:
        """Wall seconds of all iterations so far, including those before a resume."""
        return float(sum(row["seconds"] for row in self.rows))

    def evaluate(self) -> dict:
        """The final estimate on at least ``eval_batch`` samples (:func:`nirbench.evaluation.evaluate`):
        frozen sampler on a copy of its state, efficiency gate respected, honest standard errors."""
        key = jax.random.split(self.key)[1]  # distinct from every fold_in(key, iteration)
        return evaluate(self, self.config.eval_batch, key)


def run(config: VMCConfig, steps_csv, summary_csv, checkpoint_dir=None, resume=False, progress=True) -> dict:
    """Train, evaluate and write the steps and summary CSVs (atomically). Returns the summary row."""
    wall_start = time.perf_counter()
    vmc = VMCRun(config)
    if resume and checkpoint_dir and not vmc.load_checkpoint(checkpoint_dir):
        print(f"no checkpoint in {checkpoint_dir}: starting afresh", file=sys.stderr)
    status = vmc.train(checkpoint_dir, progress=progress)
    final = vmc.evaluate()
    steps = pd.DataFrame(vmc.rows)
    level_columns = [f"e_{k}" for k in range(config.states)]
    steps = steps.reindex(columns=STEP_COLUMNS + level_columns)
    reference = vmc.reference.sum() if vmc.reference is not None else math.nan
    proposal = getattr(vmc.sampler_state, "proposal", None)
    drift, drift_sigma = final_drift(steps["nqs_step"], steps["energy"])
    summary = {
        **vmc.hamiltonian.describe(), "states": config.states, "net": config.net, "sampler": config.sampler,
        "seed": config.seed, "nqs_params": count_parameters(vmc.nqs),
        "proposal_params": count_parameters(proposal) if proposal is not None else math.nan,
        "steps": vmc.nqs_step, "iterations": vmc.iteration, "batch": config.batch,
        **evaluation_columns(final),
        "reference_energy": reference,
        "relative_error": abs(final["energy"] - reference) / abs(reference) if vmc.reference is not None else math.nan,
        "mean_efficiency": steps["efficiency"].mean(), "mean_ess": steps["ess"].mean(),
        "final_drift": drift, "final_drift_sigma": drift_sigma, "converged": is_converged(drift, drift_sigma),
        "wall_seconds": time.perf_counter() - wall_start, "status": status,
    }  # fmt: skip
    write_csv_atomically(steps, steps_csv)
    write_csv_atomically(pd.DataFrame([summary]), summary_csv)
    return summary
