"""The options of a VMC run: one field per option with its default and help (:class:`VMCConfig`),
the options file reader, the reference reader, and the sampler keyword arguments they imply.

Each field carries its component (:data:`SECTIONS`), default and help. The CLI flags of
``nirbench vmc`` and its ``--help`` (grouped by component) are derived from the fields, and the
pipeline takes its list of run options and their checks from here (``workflow/rules/common.smk``).
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import optax
import pandas as pd
import yaml

from nirbench.models import NETS, parse_flip_parities
from nirbench.models.symmetry import AVERAGES, OUTPUT_HEADS
from nirbench.samplers import SAMPLERS

_REQUIRED = dataclasses.MISSING


#: The components a run's options belong to, each with what it covers, in the order of ``nirbench
#: vmc --help``. An options file gives each option flat (``width: 64``) or under its component
#: (``network: {width: 64}``); either way the option keeps its one name.
SECTIONS = {
    "system": "what is simulated: Hamiltonian, lattice, number of states, reference energies",
    "network": "the neural quantum state: architecture, symmetries, output head",
    "training": "the NQS optimiser: number of updates, learning-rate schedule, minSR",
    "sampling": "the sampler, the batch and the target power (every sampler)",
    "nir": "NIR only: the Transformer proposal, its training, the gate, the trust region",
    "mcmc": "Metropolis-Hastings only: warm-up, thinning, chains",
    "run": "seed, time limit, final evaluation, diagnostics, checkpoints",
}


def option(section: str, default=_REQUIRED, help: str = ""):
    """A :class:`VMCConfig` field: its component (a key of :data:`SECTIONS`), its default and its
    one line of help (``nirbench vmc --help``), in one place; the CLI flags, their groups and the
    pipeline's list of options are derived from the fields."""
    if section not in SECTIONS:
        raise ValueError(f"unknown option section {section!r}; the sections are {list(SECTIONS)}")
    metadata = {"help": help, "section": section}
    if default is _REQUIRED:
        return field(metadata=metadata)
    return field(default=default, metadata=metadata)


#: the Python types of the annotations of :class:`VMCConfig`'s fields (an ``int`` option refuses a ``bool``)
_TYPES = {"int": int, "float": (int, float), "bool": bool, "str": str}
#: ``proposal_patch``'s word for one column of the lattice (``ly`` spins) per proposal token
PATCH_COLUMN = "column"
#: the units of ``lr`` and ``lr_final`` (VMCConfig.lr_units)
LR_UNITS = ("absolute", "energy")
#: The options that say what is simulated and how it is labelled: the system, the sampler, the seed
#: and the reference. A pipeline experiment sets them per run; recipes and presets (the method's
#: settings) never do.
EXPERIMENT_KEYS = ("model", "lx", "ly", "bc", "g", "j2", "states", "sampler", "seed", "reference")


@dataclass
class VMCConfig:
    """Every option of a VMC run (the keys of the ``--config`` YAML). Defaults: paper table A1.

    The MLP width follows table A1 (128); the paper's text says 256 (section 4.2).
    """

    model: str = option("system", help="Hamiltonian: tfi or j1j2")
    lx: int = option("system", help="lattice length in x")
    ly: int = option("system", help="lattice length in y")
    bc: str = option("system", help="boundary conditions: open or periodic")
    g: float | None = option("system", None, "TFI transverse field (>= 0)")
    j2: float | None = option("system", None, "J1-J2 coupling J2/J1 (default 0.5)")
    states: int = option("system", 1, "number K of lowest states (multi-state determinant)")
    net: str = option("network", "mlp", "single-state network: mlp or rescnn")
    width: int = option("network", 128, "MLP hidden width (table A1: 128)")
    depth: int = option("network", 4, "MLP hidden layers")
    channels: int = option("network", 16, "ResCNN channels")
    blocks: int = option("network", 4, "ResCNN residual blocks")
    symmetries: bool = option(
        "network", True, "impose the model's symmetries (J1-J2: spin flip, lattice symmetries)"
    )
    symmetry_average: str = option(
        "network",
        "log",
        "what the symmetrisation averages: log (log psi, paper) or amplitude (psi, a projector)",
    )
    output_head: str = option(
        "network",
        "log",
        "what the network's two outputs are: log (Re, Im log psi; paper) or signed (a real amplitude exp(u) (1 + v), beyond the paper)",
    )
    flip_parities: str | None = option(
        "network",
        None,
        "TFI: the spin-flip parity of the states in order, up to K characters + - or . (free); the states after the string are free (e.g. +-: the even ground state and the odd next level, at every field; unset: none imposed; beyond the paper)",
    )
    marshall_sign: bool = option(
        "network", False, "J1-J2: multiply each network by the Marshall sign (a sign prior, beyond the paper)"
    )
    sampler: str = option("sampling", "nir", "exact, mcmc or nir")
    batch: int = option("sampling", 512, "samples per step")
    steps: int = option("training", 10000, "number of NQS updates")
    lr: float = option("training", 1e-3, "NQS learning rate (of the optimizer: Adam or SGD)")
    lr_final: float | None = option(
        "training", None, "if set, the NQS learning rate decays from lr to lr_final over the steps (cosine)"
    )
    lr_warmup: int = option(
        "training", 0, "NQS updates over which the learning rate rises linearly from 0 to lr (0: none)"
    )
    lr_units: str = option(
        "training",
        "absolute",
        "units of lr and lr_final: absolute, or energy (a dimensionless imaginary-time step, divided by the Hamiltonian's energy scale per site before use, so that one value serves every field)",
    )
    optimizer: str = option("training", "adam", "adam or sgd, applied to the (minSR) direction")
    minsr: bool = option("training", True, "precondition with minSR")
    diag_shift: float = option("training", 1e-4, "minSR diagonal shift (> 0)")
    seed: int = option("run", 0, "random seed")
    # NIR
    proposal_dim: int = option("nir", 32, "NIR proposal embedding dimension")
    proposal_layers: int = option("nir", 4, "NIR proposal Transformer layers")
    proposal_heads: int = option("nir", 4, "NIR proposal attention heads")
    proposal_lr: float = option("nir", 1e-3, "NIR proposal learning rate")
    proposal_train_steps: int = option("nir", 1, "NIR proposal Adam steps per sampled batch (paper: 1)")
    proposal_retrain_steps: int | None = option(
        "nir",
        None,
        "NIR proposal Adam steps in a call whose efficiency is below alpha_eff (default: proposal_train_steps)",
    )
    proposal_training: str = option(
        "nir",
        "batch",
        "NIR proposal training data: batch (the returned batch, paper) or proposals (fresh minibatches drawn from the whole weighted proposal set)",
    )
    proposal_train_ess: float = option(
        "nir",
        0.0,
        "NIR, proposal_training=proposals: temper the proposal set's weights w -> w^beta for training, beta in [0, 1] the largest whose ESS is >= this times batch, so that a call with a handful of heavy tuples does not fit them (0: untempered; the estimates keep the untempered weights)",
    )
    gate_smoothing: float = option(
        "nir",
        0.0,
        "NIR: the gate compares a moving average of the efficiency with this weight on the past, in [0, 1) (0: paper)",
    )
    trust_region: float | None = option(
        "nir",
        None,
        "NIR: halve an NQS step until its predicted efficiency on the current proposals is >= this fraction of the current one, in (0, 1] (unset: off; other samplers ignore it, like every NIR option)",
    )
    trust_floor: float = option(
        "nir",
        0.0,
        "NIR trust region: nor below this efficiency (nor below the current one, if that is lower), in [0, 1) (0: no floor)",
    )
    proposal_dtype: str = option(
        "nir",
        "float32",
        "NIR proposal precision: float32 or float64 (the importance weights use the NQS precision)",
    )
    proposal_factorization: str = option(
        "nir",
        "joint",
        "NIR proposal over a K-tuple: joint (one Transformer over its K*N tokens, paper) or product (one Transformer over N tokens for each of the K configurations, q = prod_k q1(s_k))",
    )
    proposal_patch: int | str = option(
        "nir",
        1,
        "NIR proposal: spins per token, p consecutive sites of one configuration read as one of 2^p values (1: binary tokens, paper; p must divide N, at most 8), or 'column': the ly sites of one column x, whatever the lattice",
    )
    p_floor: float = option(
        "nir", 1e-4, "floor on every conditional probability of the proposal, in [0, 2^-proposal_patch)"
    )
    alpha_ess: float = option("nir", 2.0, "NIR: propose until ESS >= alpha_ess * batch")
    alpha_eff: float = option("nir", 0.1, "NIR: update the NQS only if ESS/n_proposed >= alpha_eff")
    nir_max_rounds: int | None = option(
        "nir", None, "NIR: most proposal batches per adaptive call (default ceil((alpha_ess + 1) / alpha_eff))"
    )
    nir_fixed_batches: int | None = option(
        "nir", None, "NIR: a fixed number of proposal batches per step (disables the adaptive rule)"
    )
    nir_mode: str = option("nir", "resample", "NIR: resample, or importance (weighted proposals)")
    nir_loss: str = option("nir", "forward", "NIR proposal loss: forward or backward KL")
    symmetrize_proposal: bool = option("nir", False, "NIR: symmetry-augmented proposal")
    sampling_power: float = option(
        "sampling",
        1.0,
        "p in (0, 1]: every sampler targets |Psi|^(2p) and reweights each sample by |Psi|^(2(1-p)) (1: plain |Psi|^2; beyond the paper)",
    )
    max_retries: int = option(
        "nir", 200, "NIR: stop after this many iterations in a row without an NQS update"
    )
    max_minutes: float | None = option(
        "run",
        None,
        "stop training after this many minutes of iterations (resumed runs included), then evaluate",
    )
    # MCMC
    mcmc_warmup: int = option("mcmc", 640, "MCMC warm-up steps per sampling call")
    mcmc_thinning: int = option("mcmc", 10, "MCMC steps between samples")
    mcmc_chains: int | None = option(
        "mcmc", None, "MCMC chains (default: the largest divisor of batch up to 16)"
    )
    mcmc_global_flip: float = option(
        "mcmc", 0.0, "MCMC: probability that a move flips a whole state of the K-tuple, or all K (0: local moves only, the paper's)"
    )
    # evaluation, diagnostics, bookkeeping
    eval_batch: int = option("run", 4096, "samples in the final evaluation")
    jsd_every: int = option("run", 0, "measure the JSD to the exact |Psi|^2 every this many steps (0: never)")
    jsd_samples: int = option("run", 25600, "samples per JSD measurement")
    checkpoint_every: int = option("run", 100, "checkpoint every this many iterations")
    reference: str | None = option(
        "system", None, "CSV of exact (ed) or extrapolated (extrapolate) energies of the same system"
    )
    extra: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, values: dict) -> VMCConfig:
        """Build from a mapping, flat or grouped by section (:func:`flatten_sections`); unknown
        keys and wrong types raise ``ValueError`` naming them."""
        values = flatten_sections(values)
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
            kinds = [_TYPES[name] for name in str(f.type).split(" | ") if name in _TYPES]
            if kinds and not any(
                isinstance(value, kind) and not (kind is int and isinstance(value, bool)) for kind in kinds
            ):
                raise ValueError(f"VMC option {f.name!r} must be of type {f.type!s}, got {value!r}")
        if self.net not in NETS:
            raise ValueError(f"unknown net {self.net!r}; choose one of {NETS}")
        if self.symmetry_average not in AVERAGES:
            raise ValueError(f"unknown symmetry_average {self.symmetry_average!r}; choose one of {AVERAGES}")
        if self.output_head not in OUTPUT_HEADS:
            raise ValueError(f"unknown output_head {self.output_head!r}; choose one of {OUTPUT_HEADS}")
        if self.flip_parities is not None:
            parse_flip_parities(self.flip_parities, self.states)
            if self.model != "tfi":
                raise ValueError("flip_parities applies to the TFI model only")
        if self.sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.sampler!r}; choose one of {SAMPLERS}")
        if not self.diag_shift > 0:
            raise ValueError(f"diag_shift must be > 0, got {self.diag_shift}")
        if self.states < 1:
            raise ValueError(f"the number of states K must be >= 1, got {self.states}")
        for name in (
            "batch",
            "steps",
            "eval_batch",
            "checkpoint_every",
            "max_retries",
            "proposal_train_steps",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if self.lr_final is not None and not 0 < self.lr_final <= self.lr:
            raise ValueError(f"lr_final must be in (0, lr = {self.lr}], got {self.lr_final}")
        if self.lr_units not in LR_UNITS:
            raise ValueError(f"unknown lr_units {self.lr_units!r}; choose one of {LR_UNITS}")
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
        if not self.proposal_train_ess >= 0:
            raise ValueError(f"proposal_train_ess must be >= 0, got {self.proposal_train_ess}")
        if self.proposal_train_ess and self.proposal_training != "proposals":
            raise ValueError("proposal_train_ess tempers the proposal-set training only: set proposal_training to 'proposals'")
        if not 0 <= self.gate_smoothing < 1:
            raise ValueError(f"gate_smoothing must be in [0, 1), got {self.gate_smoothing}")
        if isinstance(self.proposal_patch, str) and self.proposal_patch != PATCH_COLUMN:
            raise ValueError(
                f"proposal_patch must be a number of spins or {PATCH_COLUMN!r}, got {self.proposal_patch!r}"
            )

    @property
    def patch_sites(self) -> int:
        """The spins per proposal token: ``proposal_patch``, or ``ly`` (one column; sites are
        numbered ``x * ly + y``, so a column is ``ly`` consecutive sites) for ``'column'``."""
        return self.ly if self.proposal_patch == PATCH_COLUMN else self.proposal_patch

    def learning_rate(self, energy_scale: float | None = None) -> float | optax.Schedule:
        """The NQS learning rate as a function of the update count.

        ``lr``; or, with ``lr_final``, a cosine decay from ``lr`` to ``lr_final`` that ends at
        ``steps``; with ``lr_warmup = W > 0`` either is preceded by a linear rise from 0 to ``lr``
        over the first ``W`` updates (the decay then spans the remaining ``steps - W``).
        With ``lr_units = "energy"``, ``lr`` and ``lr_final`` are first divided by
        ``energy_scale`` (the Hamiltonian's, :attr:`nirbench.hamiltonians.Hamiltonian.energy_scale`),
        which must then be given.
        """
        lr, lr_final = self.lr, self.lr_final
        if self.lr_units == "energy":
            if energy_scale is None or not energy_scale > 0:
                raise ValueError(f"lr_units 'energy' needs the Hamiltonian's energy scale (> 0), got {energy_scale}")
            lr, lr_final = lr / energy_scale, None if lr_final is None else lr_final / energy_scale
        if self.lr_warmup == 0:
            if lr_final is None:
                return lr
            return optax.cosine_decay_schedule(lr, self.steps, alpha=lr_final / lr)
        return optax.warmup_cosine_decay_schedule(
            0.0, lr, self.lr_warmup, self.steps, end_value=lr if lr_final is None else lr_final
        )


def read_options_file(path: str | os.PathLike) -> dict:
    """The flat mapping of VMC options in the YAML file ``path``, whose options may be grouped under
    their components (:data:`SECTIONS`, e.g. ``nir: {proposal_dim: 32}``) or given flat. Names
    outside a section are not checked here (:meth:`VMCConfig.from_dict` does).

    ``ValueError`` naming the file when it is missing, not YAML, not a mapping, puts an option
    under another component than its own, or gives an option twice.
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
        message = f"config file {path} must be a mapping of VMC options, got a {type(values).__name__}"
        raise ValueError(message)  # noqa: TRY004 (bad input, reported as a one-line error)
    try:
        return flatten_sections(values)
    except ValueError as error:
        raise ValueError(f"config file {path}: {error}") from None


def option_sections() -> dict[str, str]:
    """``{option name: its section}`` for every :class:`VMCConfig` option."""
    return {f.name: f.metadata["section"] for f in fields(VMCConfig) if f.name != "extra"}


def flatten_sections(values: dict) -> dict:
    """The flat options of a mapping that may group them by component (``{"nir": {"alpha_eff":
    0.1}, "lx": 4}`` -> ``{"alpha_eff": 0.1, "lx": 4}``). ``ValueError`` when a section is not a
    mapping, holds an option of another section or an unknown one, or an option is given twice."""
    owner = option_sections()
    flat = {}
    for key, value in values.items():
        if key not in SECTIONS:
            if key in flat:
                raise ValueError(f"option {key!r} is given twice")
            flat[key] = value
            continue
        if not isinstance(value, dict):
            raise ValueError(f"section {key!r} must be a mapping of its options, got {value!r}")  # noqa: TRY004
        for name, item in value.items():
            if owner.get(name) != key:
                where = "is not an option" if name not in owner else f"belongs to section {owner[name]!r}"
                raise ValueError(f"{key}.{name}: {name!r} {where}")
            if name in flat:
                raise ValueError(f"option {name!r} is given twice")
            flat[name] = item
    return flat


def nest_sections(values: dict) -> dict:
    """The inverse of :func:`flatten_sections`: flat options grouped by section, sections in the
    order of :data:`SECTIONS` (what ``nirbench vmc --check-config`` prints)."""
    owner = option_sections()
    nested = {section: {} for section in SECTIONS}
    for name, value in values.items():
        nested[owner[name]][name] = value
    return {section: options for section, options in nested.items() if options}


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
        raise ValueError(
            f"reference file {path} is not a CSV of energies ({type(error).__name__})"
        ) from error
    for key, expected in hamiltonian.describe().items():
        if key not in frame.columns or expected is None:
            continue
        found = frame[key].dropna().unique()
        if len(found) == 0:
            continue
        same = all(
            (
                math.isclose(float(v), float(expected))
                if isinstance(expected, float)
                else str(v) == str(expected)
            )
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


def sampler_options(c: VMCConfig) -> dict:
    """The keyword arguments of ``make_sampler(c.sampler, ...)`` from the run options ``c``."""
    if c.sampler == "nir":
        return {
            "n_states": c.states, "alpha_ess": c.alpha_ess, "alpha_eff": c.alpha_eff, "max_rounds": c.nir_max_rounds, "embed_dim": c.proposal_dim, "n_heads": c.proposal_heads,
            "n_layers": c.proposal_layers, "p_floor": c.p_floor, "learning_rate": c.proposal_lr,
            "train_steps": c.proposal_train_steps, "loss": c.nir_loss, "retrain_steps": c.proposal_retrain_steps,
            "training": c.proposal_training, "train_ess": c.proposal_train_ess, "gate_smoothing": c.gate_smoothing,
            "mode": c.nir_mode, "adaptive": c.nir_fixed_batches is None, "n_proposal_batches": c.nir_fixed_batches,
            "symmetrize": c.symmetrize_proposal, "proposal_dtype": c.proposal_dtype,
            "proposal_factorization": c.proposal_factorization, "proposal_patch": c.patch_sites,
        }  # fmt: skip
    if c.sampler == "mcmc":
        return {"n_chains": c.mcmc_chains, "n_warmup": c.mcmc_warmup, "thinning": c.mcmc_thinning,
                "global_flip": c.mcmc_global_flip}  # fmt: skip
    return {}
