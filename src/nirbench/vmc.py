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
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from nirbench.estimators import (
    final_drift,
    final_window,
    is_converged,
    standard_error,
)
from nirbench.evaluation import JSD_COLUMNS, evaluate, evaluation_columns, sampler_jsd
from nirbench.exact import nqs_exact_columns, sector_dimension
from nirbench.hamiltonians import make_hamiltonian
from nirbench.io import (
    CHECKPOINT_META,
    read_checkpoint,
    read_checkpoint_meta,
    write_checkpoint,
    write_csv_atomically,
)
from nirbench.minsr import (
    make_optimizer,
)
from nirbench.models import batched_log_prob, build_nqs
from nirbench.options import VMCConfig, load_reference, sampler_options
from nirbench.profiling import timed
from nirbench.samplers import make_sampler
from nirbench.samplers.exact import check_exact_size
from nirbench.updates import (
    TemperedLogProb,
    count_parameters,
    estimate,
    nqs_updates,
    predicted_efficiency,
    reweight_tempered,
)

STEP_COLUMNS = [
    "step", "nqs_step", "energy", "energy_error", "energy_sigma", "variance",
    "ess", "efficiency", "n_proposed", "acceptance", "nqs_updated", "step_scale", "predicted_efficiency",
    "seconds", *JSD_COLUMNS,
]  # fmt: skip


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


MAX_STEP_HALVINGS = 8


class VMCRun:
    """A VMC run: the Hamiltonian, NQS, sampler, optimiser and their states.

    Use :meth:`train` (which can resume from a checkpoint) then :meth:`evaluate`.
    """

    def __init__(self, config: VMCConfig):
        config.validate()
        self.config = config
        self.hamiltonian = make_hamiltonian(
            config.model, config.lx, config.ly, config.bc, g=config.g, j2=config.j2
        )
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
                raise ValueError(
                    f"jsd_every needs the exact |Psi|^2: {str(error).split('; use')[0]}; "
                    "set jsd_every to 0 for this system"
                ) from error
        key = jax.random.PRNGKey(config.seed)
        model_key, sampler_key, self.key = jax.random.split(key, 3)
        self.nqs = build_nqs(
            self.hamiltonian, config.net, config.states, width=config.width, depth=config.depth,
            channels=config.channels, n_blocks=config.blocks, symmetries=config.symmetries,
            marshall_sign=config.marshall_sign, symmetry_average=config.symmetry_average,
            output_head=config.output_head, flip_parities=config.flip_parities, key=model_key,
        )  # fmt: skip
        self.sampler, self.sampler_state = self.make_sampler(config.sampler, config.batch, sampler_key)
        self.log_prob_fn = (
            batched_log_prob if config.sampling_power == 1.0 else TemperedLogProb(config.sampling_power)
        )
        self.optimizer = make_optimizer(config.optimizer, config.learning_rate(self.hamiltonian.energy_scale))
        self.opt_state = self.optimizer.init(eqx.filter(self.nqs, eqx.is_inexact_array))
        self.iteration = 0
        self.nqs_step = 0
        self.rows: list[dict] = []
        #: how training ended (``train``'s status), ``None`` while it goes on; saved with checkpoints
        self.finished: str | None = None

    def make_sampler(self, name: str, batch: int, key, **changes):
        """A sampler ``name`` drawing ``batch`` samples per call, configured by this run's options
        (with ``changes``, run options such as ``proposal_dim=32``, applied to them), and its fresh
        state: ``(sampler, state)``. ``ValueError`` when it cannot serve the system."""
        options = sampler_options(dataclasses.replace(self.config, sampler=name, **changes))
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
            raise ValueError(
                f"{Path(directory) / CHECKPOINT_META}: not a nirbench checkpoint ({error})"
            ) from error
        run = cls(config)
        run.load_checkpoint(directory)
        return run

    # ------------------------------------------------------------------ checkpoints
    def _state_tree(self):
        return (self.nqs, self.opt_state, self.sampler_state, self.key)

    def save_checkpoint(self, directory: str | os.PathLike) -> None:
        """Write the NQS, optimiser, sampler state, key and log rows as one checkpoint
        (:func:`nirbench.io.write_checkpoint`: a kill never leaves a mixed or partial one)."""
        meta = {"iteration": self.iteration, "nqs_step": self.nqs_step, "config": self.config.to_dict(),
                "finished": self.finished}  # fmt: skip
        write_checkpoint(directory, self._state_tree(), meta, pd.DataFrame(self.rows))

    def _same_configuration(self, stored: dict) -> bool:
        """Whether a checkpoint's options (``stored``, :meth:`VMCConfig.to_dict`) are this run's.

        An option that nirbench gained after the checkpoint was written is absent from ``stored``;
        it counts as set to its default, which by design keeps the behaviour the option did not
        yet change (so adding an option does not orphan the checkpoints of running pipelines)."""
        current = self.config.to_dict()
        added = {f.name: f.default for f in dataclasses.fields(VMCConfig)
                 if f.name in current and f.name not in stored and f.default is not dataclasses.MISSING}  # fmt: skip
        return {**stored, **added} == current

    def load_checkpoint(self, directory: str | os.PathLike) -> bool:
        """Restore from ``directory`` if it holds a checkpoint; return whether it did.

        ``ValueError`` naming the file when the checkpoint is damaged (checksums), was written by
        another configuration, or cannot be read; nothing is restored then.
        """
        meta = read_checkpoint_meta(directory)
        if meta is None:
            return False
        if not self._same_configuration(meta["config"]):
            raise ValueError(f"checkpoint in {directory} was written by a different configuration")
        tree, meta, rows = read_checkpoint(directory, self._state_tree())
        (self.nqs, self.opt_state, self.sampler_state, self.key) = tree
        self.iteration, self.nqs_step = meta["iteration"], meta["nqs_step"]
        self.finished = meta.get("finished")
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
        batch, self.sampler_state, stats = timed("sampling", self.draw, self.sampler, self.sampler_state, sample_key)
        mean_matrix, levels, eps, variance = timed(
            "local energies", estimate, self.nqs, self.hamiltonian, batch.configs, batch.weights
        )
        energy = float(jnp.real(jnp.trace(mean_matrix)))
        if not math.isfinite(energy):
            raise NonFiniteError(f"the energy became non-finite at iteration {self.iteration}")
        sigma, n_effective = standard_error(np.asarray(eps), batch)
        jsds = dict.fromkeys(JSD_COLUMNS, math.nan)
        if c.jsd_every and self.iteration % c.jsd_every == 0:  # the sampler that drew this batch, frozen
            jsds = timed("JSD", sampler_jsd, self, state_before, jsd_key, c.jsd_samples)
        updated = bool(stats["nqs_update"])
        scale = predicted = math.nan
        if updated:
            updates, opt_state, finite = timed(
                "gradient and minSR", nqs_updates, self.nqs, self.opt_state, self.optimizer, batch.configs,
                batch.weights, eps, c.diag_shift, c.minsr,
            )  # fmt: skip
            if not bool(finite):
                raise NonFiniteError(f"the NQS update became non-finite at iteration {self.iteration}")
            scale, predicted = timed("trust region", self._trust_region, updates, batch, stats)
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
            "seconds": time.perf_counter() - start, **jsds,
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
                bar.set_postfix(
                    energy=f"{row['energy']:.6f}",
                    eff=f"{row['efficiency']:.2f}",
                    iteration=self.iteration,
                    retraining=retries,
                )
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
                    raise OrphanedError(
                        f"process {watched} ({STOP_WITH_PID}) has gone; stopped at iteration "
                        f"{self.iteration} after a checkpoint"
                    )
        finally:
            bar.close()
        self.finished = status
        if checkpoint_dir:
            self.save_checkpoint(checkpoint_dir)
        return status

    def training_seconds(self) -> float:
        """Wall seconds of all iterations so far, including those before a resume."""
        return float(sum(row["seconds"] for row in self.rows))

    def evaluate(self, retrain: bool = True) -> dict:
        """The final estimate on at least ``eval_batch`` samples (:func:`nirbench.evaluation.evaluate`):
        frozen sampler on a copy of its state, efficiency gate respected (the proposal retrained up
        to ``max_retries`` times while it fails, unless ``retrain`` is false), honest standard errors."""
        key = jax.random.split(self.key)[1]  # distinct from every fold_in(key, iteration)
        return evaluate(self, self.config.eval_batch, key, max_retrains=None if retrain else 0)


def run(config: VMCConfig, steps_csv, summary_csv, checkpoint_dir=None, resume=False, progress=True) -> dict:
    """Train, evaluate and write the steps and summary CSVs (atomically). Returns the summary row."""
    wall_start = time.perf_counter()
    vmc = VMCRun(config)
    if resume and checkpoint_dir:
        if not vmc.load_checkpoint(checkpoint_dir):
            print(f"no checkpoint in {checkpoint_dir}: starting afresh", file=sys.stderr)
        elif vmc.finished is not None:
            # only a run that was stopped is continued: a finished one (rerun because its outputs
            # were removed or forced, e.g. `snakemake --forceall`) is recomputed, not re-evaluated
            print(f"the checkpoint in {checkpoint_dir} is of a finished run ({vmc.finished}): starting afresh",
                  file=sys.stderr)  # fmt: skip
            vmc = VMCRun(config)
    status = vmc.train(checkpoint_dir, progress=progress)
    # Retraining the proposal in the evaluation is training: after a run that spent its time
    # (max_minutes) or stalled (max_retries iterations without an update), the evaluation measures
    # with the proposal as it stands (unbiased; eval_gate says whether the gate passed). Otherwise a
    # stalled 8x8 NIR run would retrain for hours after its time limit (200 calls of 100-140 s).
    final = vmc.evaluate(retrain=status == "completed")
    steps = pd.DataFrame(vmc.rows)
    level_columns = [f"e_{k}" for k in range(config.states)]
    steps = steps.reindex(columns=STEP_COLUMNS + level_columns)
    reference = vmc.reference.sum() if vmc.reference is not None else math.nan
    proposal = getattr(vmc.sampler_state, "proposal", None)
    drift, drift_sigma = final_drift(steps["nqs_step"], steps["energy"])
    level_references = {
        f"reference_e_{k}": float(vmc.reference[k]) if vmc.reference is not None else math.nan
        for k in range(config.states)
    }
    summary = {
        **vmc.hamiltonian.describe(), "states": config.states, "net": config.net, "sampler": config.sampler,
        "seed": config.seed, "nqs_params": count_parameters(vmc.nqs),
        "proposal_params": count_parameters(proposal) if proposal is not None else math.nan,
        "steps": vmc.nqs_step, "iterations": vmc.iteration, "batch": config.batch,
        **evaluation_columns(final),
        "reference_energy": reference, **level_references,
        "relative_error": abs(final["energy"] - reference) / abs(reference) if vmc.reference is not None else math.nan,
        **nqs_exact_columns(vmc.nqs, vmc.hamiltonian, config.states),
        "mean_efficiency": steps["efficiency"].mean(), "mean_ess": steps["ess"].mean(),
        # Metropolis: below about 0.01 the chains are frozen (docs/measurements.md); nan for NIR
        "final_acceptance": steps["acceptance"][final_window(steps["nqs_step"])].mean(),
        "final_drift": drift, "final_drift_sigma": drift_sigma, "converged": is_converged(drift, drift_sigma),
        "wall_seconds": time.perf_counter() - wall_start, "status": status,
    }  # fmt: skip
    write_csv_atomically(steps, steps_csv)
    write_csv_atomically(pd.DataFrame([summary]), summary_csv)
    return summary
