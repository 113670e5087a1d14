# Helpers shared by every stage: path builders, the experiment plans read from the config,
# the settings of one VMC run and the text of its RUN.yaml.
#
# Layout of what the pipeline writes (every path spells its parameters):
#   {results}/ed/{system}/levels.csv                               nirbench ed
#   {results}/dmrg/{system}/chi~25-50-100-200/scan.csv             nirbench dmrg
#   {results}/dmrg/{system}/chi~25-50-100-200/extrapolated.csv     nirbench extrapolate
#   {results}/vmc/preset~{preset}/{system}/sampler~{s}/seed~{n}/   run.yaml, steps.csv,
#                                                                  summary.csv, checkpoints/
#   {results}/{fig2_runs,fig2_training,fig3_jsd,fig4_levels,table1_runs,table1}.csv, table1.md
#   {results}/table1_ablation{,_calls}.csv                         nirbench ablate
#   {results}/logs/..., {results}/benchmarks/..., {results}/provenance.json
#   {figures}/{fig2_energy_vs_g,fig2_training,fig3_jsd,fig4_levels,fig4_error,table1_ablation}.{png,pdf}
# with {system} = {model}/L~{lx}x{ly}/bc~{bc}/{g|j2}~{value}/K~{states}.

import os
import re
import shlex
import time
from dataclasses import dataclass

import yaml

from nirbench.options import EXPERIMENT_KEYS, VMCConfig, flatten_sections, option_sections, read_options_file
from nirbench.threads import thread_limits

RESULTS = os.path.normpath(config["results_dir"])
FIGURES = os.path.normpath(config["figures_dir"])
#: the tidy CSV of each experiment: what its figures and the claims read (one path per experiment)
TIDY_CSV = {
    "fig2": f"{RESULTS}/fig2_runs.csv",
    "fig3": f"{RESULTS}/fig3_jsd.csv",
    "fig4": f"{RESULTS}/fig4_levels.csv",
    "table1": f"{RESULTS}/table1.csv",
}
#: the table-1 proposal sizes trained against one fixed NQS (nirbench ablate): per size, per call
TABLE1_ABLATION = {"sizes": f"{RESULTS}/table1_ablation.csv", "calls": f"{RESULTS}/table1_ablation_calls.csv"}
EXPERIMENTS = config["experiments"]


def threads_env(wildcards, threads):
    """The start of a compute job's shell command (its `params.env`): XLA and the BLAS libraries
    limited to the job's threads, progress bars every 30 s in the log."""
    limits = " ".join(f"{name}={shlex.quote(value)}" for name, value in thread_limits(threads).items())
    return f"export {limits} XLA_PYTHON_CLIENT_PREALLOCATE=false TQDM_MININTERVAL=30;"


#: a run's checkpoint folder in a shell command whose input `run` is its run.yaml: named by the
#: hash of run.yaml, so a changed configuration starts afresh
RUN_CHECKPOINTS = "$(dirname {input.run})/checkpoints/$(sha1sum < {input.run} | cut -c1-12)"
FIGURE_FORMATS = ["png", "pdf"]
ENV = "../envs/nirbench.yaml"
#: every run option a preset, a recipe or the `vmc` block may set: nirbench's options
#: (nirbench.options.VMCConfig) less those the experiment sets per run
HYPER_KEYS = frozenset(option_sections()) - set(EXPERIMENT_KEYS)


wildcard_constraints:
    model="tfi|j1j2",
    lx=r"\d+",
    ly=r"\d+",
    bc="open|periodic",
    coupling=r"(g|j2)~[0-9][0-9.e+-]*",
    g=r"[0-9][0-9.e+-]*",
    K=r"\d+",
    chis=r"\d+(-\d+)*",
    preset=r"[A-Za-z0-9_]+(-d\d+l\d+)?",
    sampler="nir|mcmc|exact",
    seed=r"\d+",


# Path patterns (relative parts); wildcards in braces.
SYSTEM = "{model}/L~{lx}x{ly}/bc~{bc}/{coupling}/K~{K}"
RUN = f"preset~{{preset}}/{SYSTEM}/sampler~{{sampler}}/seed~{{seed}}"
RUN_DIR = f"{RESULTS}/vmc/{RUN}"
RUN_BENCHMARK = f"{RESULTS}/benchmarks/vmc/{RUN}.tsv"
DMRG_DIR = f"{RESULTS}/dmrg/tfi/L~{{lx}}x{{ly}}/bc~{{bc}}/g~{{g}}/K~{{K}}/chi~{{chis}}"
ABLATION_BENCHMARK = f"{RESULTS}/benchmarks/table1_ablation.tsv"


# --------------------------------------------------------------------------- config checks
def parse_lattice(text, key):
    """'6x4' -> (6, 4); both lengths must be >= 2."""
    lx, ly = (int(part) for part in text.split("x"))
    if lx < 2 or ly < 2:
        raise ValueError(f"config key {key}: the lattice must be at least 2x2, got {text!r}")
    return lx, ly


def check_config(cfg):
    """Checks the JSON schema cannot express; each error names the offending key."""
    presets = cfg["presets"]
    for name, exp in cfg["experiments"].items():
        if exp["preset"] not in presets:
            raise ValueError(
                f"config key experiments.{name}.preset: unknown preset {exp['preset']!r}; "
                f"the presets are {sorted(presets)}"
            )
        for i, entry in enumerate(exp.get("lattices", [])):
            lattice, _, _, preset = lattice_entry(entry, exp)
            parse_lattice(lattice, f"experiments.{name}.lattices[{i}]")
            if preset not in presets:
                raise ValueError(
                    f"config key experiments.{name}.lattices[{i}].preset: unknown preset "
                    f"{preset!r}; the presets are {sorted(presets)}"
                )
        if "lattice" in exp:
            parse_lattice(exp["lattice"], f"experiments.{name}.lattice")
    for case, spec in cfg.get("accuracy", {}).items():
        if spec["preset"] not in presets:
            raise ValueError(
                f"config key accuracy.{case}.preset: unknown preset {spec['preset']!r}; the presets are {sorted(presets)}"
            )
        coupling = "g" if spec.get("model", "tfi") == "tfi" else "j2"
        if coupling not in spec:
            raise ValueError(f"config key accuracy.{case}: the {spec.get('model', 'tfi')} model needs {coupling}")
        parse_lattice(spec["lattice"], f"accuracy.{case}.lattice")
    fig4 = cfg["experiments"]["fig4"]
    if fig4["enabled"] and fig4["dmrg_chi_shown"] not in cfg["references"]["dmrg_chi"]:
        raise ValueError(
            f"config key experiments.fig4.dmrg_chi_shown: {fig4['dmrg_chi_shown']} is not one of "
            f"references.dmrg_chi = {cfg['references']['dmrg_chi']}"
        )
    table1 = cfg["experiments"]["table1"]
    lx, ly = parse_lattice(table1["lattice"], "experiments.table1.lattice")
    if (lx * ly) % 2:
        raise ValueError(
            f"config key experiments.table1.lattice: the J1-J2 model needs an even number of sites "
            f"(zero-magnetisation sector), got {table1['lattice']!r}"
        )


# --------------------------------------------------------------------------- systems and runs
def fmt_float(value):
    """The spelling of a coupling in a path: 1 -> '1.0', 0.01 -> '0.01'."""
    return repr(float(value))


@dataclass(frozen=True)
class System:
    """A Hamiltonian and the number K of lowest states: one ED/DMRG reference, many VMC runs."""

    model: str
    lx: int
    ly: int
    bc: str
    coupling: float  # g (TFI) or J2/J1 (J1-J2)
    states: int

    def __post_init__(self):
        object.__setattr__(self, "coupling", float(self.coupling))

    @property
    def coupling_name(self):
        return "g" if self.model == "tfi" else "j2"

    @property
    def n_sites(self):
        return self.lx * self.ly

    @property
    def wildcards(self):
        """The values of the path wildcards of :data:`SYSTEM`."""
        coupling = f"{self.coupling_name}~{fmt_float(self.coupling)}"
        return dict(model=self.model, lx=self.lx, ly=self.ly, bc=self.bc, coupling=coupling, K=self.states)

    @property
    def path(self):
        return SYSTEM.format(**self.wildcards)

    @classmethod
    def from_wildcards(cls, w):
        name, value = w.coupling.split("~")
        return cls(w.model, int(w.lx), int(w.ly), w.bc, float(value), int(w.K))


@dataclass(frozen=True)
class Run:
    """One VMC run: a system trained with one preset, sampler and seed."""

    preset: str  # a preset name, optionally with a proposal-size suffix: 'j1j2-d16l2'
    system: System
    sampler: str
    seed: int

    def _format(self, pattern):
        return pattern.format(preset=self.preset, sampler=self.sampler, seed=self.seed, **self.system.wildcards)

    @property
    def dir(self):
        return self._format(RUN_DIR)

    @property
    def benchmark(self):
        """Snakemake's benchmark record of the run's vmc job."""
        return self._format(RUN_BENCHMARK)

    @classmethod
    def from_wildcards(cls, w):
        return cls(w.preset, System.from_wildcards(w), w.sampler, int(w.seed))


def run_files(runs, name):
    """The file `name` (run.yaml, steps.csv, summary.csv) of each run."""
    return [f"{run.dir}/{name}" for run in runs]


def chi_tag():
    return "-".join(str(chi) for chi in sorted(config["references"]["dmrg_chi"]))


def ed_file(system):
    return f"{RESULTS}/ed/{system.path}/levels.csv"


def dmrg_file(system):
    return f"{RESULTS}/dmrg/{system.path}/chi~{chi_tag()}/scan.csv"


def extrapolated_file(system):
    return f"{RESULTS}/dmrg/{system.path}/chi~{chi_tag()}/extrapolated.csv"


def has_ed(system):
    return system.n_sites <= config["references"]["ed_max_sites"]


def reference_file(system):
    """ED levels for small systems, else the DMRG extrapolation (TFI only), else None."""
    if has_ed(system):
        return ed_file(system)
    if system.model == "tfi":
        return extrapolated_file(system)
    return None


# --------------------------------------------------------------------------- run settings
SYSTEM_KEYS = ("model", "lx", "ly", "bc")
PROPOSAL_SUFFIX = re.compile(r"d(\d+)l(\d+)")


def recipe_settings(path):
    """The hyperparameters of a recipe file (config/recipes/*.yaml, a `nirbench vmc --config` file
    that leaves the system to the command line), without its system and run keys."""
    recipe = read_options_file(path)  # flat, or grouped by section as nirbench reads it
    unknown = sorted(set(recipe) - set(EXPERIMENT_KEYS) - set(HYPER_KEYS))
    if unknown:
        raise ValueError(f"recipe {path}: unknown keys {unknown}; the run options are {sorted(HYPER_KEYS)}")
    return {key: value for key, value in recipe.items() if key not in EXPERIMENT_KEYS}


def preset_settings(preset):
    """The hyperparameters of a preset: `vmc`, then the preset's `recipe` file, then the preset's
    own keys (and the proposal-size suffix), each overriding the one before."""
    name, _, suffix = preset.partition("-")
    if name not in config["presets"]:
        raise ValueError(f"unknown preset {name!r}; the presets are {sorted(config['presets'])}")
    # each layer may group its options by section (nirbench.options.SECTIONS), as a recipe may
    base, overrides = flatten_sections(config["vmc"]), flatten_sections(config["presets"][name])
    recipe = overrides.pop("recipe", base.pop("recipe", None))
    settings = {**base, **(recipe_settings(recipe) if recipe else {}), **overrides}
    if suffix:
        dim, layers = PROPOSAL_SUFFIX.fullmatch(suffix).groups()
        settings.update(proposal_dim=int(dim), proposal_layers=int(layers))
    return settings


def run_settings(run):
    """Every key of the run's RUN.yaml (the `nirbench vmc --config` contract), fully resolved:
    the system, sampler and seed of the run, then its preset's hyperparameters."""
    system = run.system
    settings = {key: getattr(system, key) for key in SYSTEM_KEYS}
    settings[system.coupling_name] = system.coupling
    settings["states"] = system.states
    settings["sampler"] = run.sampler
    settings["seed"] = run.seed
    settings.update({k: v for k, v in preset_settings(run.preset).items() if k not in EXPERIMENT_KEYS})
    reference = reference_file(system)
    if reference is not None:
        settings["reference"] = reference
    return settings


def run_yaml_text(settings):
    """The text of a run's RUN.yaml (written by the rule run_config)."""
    body = yaml.safe_dump(settings, sort_keys=False, default_flow_style=False)
    return f"# nirbench vmc run configuration, written by the Snakemake rule run_config\n{body}"


# --------------------------------------------------------------------------- experiment plans
def lattice_entry(entry, exp):
    """An entry of an experiment's `lattices` as ``(lattice, fields, seeds, preset)``: a size
    ('4x4', run at every `g` and seed with the experiment's preset) or ``{lattice, g, seeds,
    preset}`` with its own fields, seeds or preset (a larger lattice may run fewer, or longer)."""
    entry = entry if isinstance(entry, dict) else {"lattice": entry}
    return entry["lattice"], entry.get("g", exp.get("g")), entry.get("seeds", exp.get("seeds")), entry.get("preset", exp["preset"])


def fig2_lattices():
    """fig2's lattices as ``(lattice, fields, seeds, preset)`` (:func:`lattice_entry`)."""
    exp = EXPERIMENTS["fig2"]
    return [lattice_entry(entry, exp) for entry in exp["lattices"]]


def fig2_runs():
    exp = EXPERIMENTS["fig2"]
    runs = []
    for lattice, fields, seeds, preset in fig2_lattices():
        lx, ly = parse_lattice(lattice, "fig2")
        runs += [
            Run(preset, System("tfi", lx, ly, exp["bc"], g, exp["states"]), sampler, seed)
            for g in fields
            for sampler in exp["samplers"]
            for seed in seeds
        ]
    return runs


def fig2_training_runs():
    exp = EXPERIMENTS["fig2"]
    training = exp["training"]
    system = System("tfi", *parse_lattice(training["lattice"], "fig2.training"), exp["bc"], training["g"], exp["states"])
    seeds, preset = next(
        ((s, p) for lattice, _, s, p in fig2_lattices() if lattice == training["lattice"]), (exp["seeds"], exp["preset"])
    )
    return [Run(preset, system, sampler, seed) for sampler in exp["samplers"] for seed in seeds]


def fig2_systems():
    return sorted({run.system for run in fig2_runs() + fig2_training_runs()}, key=repr)


def fig3_runs():
    exp = EXPERIMENTS["fig3"]
    system = System("tfi", *parse_lattice(exp["lattice"], "fig3"), exp["bc"], exp["g"], exp["states"])
    return [Run(exp["preset"], system, sampler, seed) for sampler in exp["samplers"] for seed in exp["seeds"]]


def fig4_systems():
    exp = EXPERIMENTS["fig4"]
    lx, ly = parse_lattice(exp["lattice"], "fig4")
    return [System("tfi", lx, ly, exp["bc"], g, exp["states"]) for g in exp["g"]]


def fig4_runs():
    exp = EXPERIMENTS["fig4"]
    return [Run(exp["preset"], system, exp["sampler"], seed) for system in fig4_systems() for seed in exp["seeds"]]


def _table1_run(dim, layers, seed):
    exp = EXPERIMENTS["table1"]
    system = System("j1j2", *parse_lattice(exp["lattice"], "table1"), exp["bc"], exp["j2"], exp["states"])
    return Run(f"{exp['preset']}-d{dim}l{layers}", system, exp["sampler"], seed)


def table1_runs():
    """The full VMC runs of table 1: every size (full_runs: all) or the smallest and the largest
    (extremes), every seed."""
    exp = EXPERIMENTS["table1"]
    dims, layers = exp["proposal_dims"], exp["proposal_layers"]
    if exp["full_runs"] == "extremes":
        sizes = sorted({(min(dims), min(layers)), (max(dims), max(layers))})
    else:
        sizes = [(dim, layer) for dim in dims for layer in layers]
    return [_table1_run(dim, layer, seed) for dim, layer in sizes for seed in exp["seeds"]]


def table1_fixed_nqs_run():
    """The run whose final NQS the proposal-size ablation holds fixed: the largest proposal's, first seed."""
    exp = EXPERIMENTS["table1"]
    return _table1_run(max(exp["proposal_dims"]), max(exp["proposal_layers"]), exp["seeds"][0])


def table1_ablation_flags():
    """The `nirbench ablate` flags of the config's table1.ablation block (unset: nirbench's defaults)."""
    exp = EXPERIMENTS["table1"]
    sizes = " ".join(f"{dim}x{layers}" for dim in exp["proposal_dims"] for layers in exp["proposal_layers"])
    options = " ".join(f"--{key.replace('_', '-')} {value}" for key, value in exp.get("ablation", {}).items())
    return f"--sizes {sizes} {options}".strip()


def recorded_seconds(benchmark, default):
    """The wall seconds (column `s`) of a job's last Snakemake benchmark record, else ``default``."""
    try:
        with open(benchmark) as record:
            return float(record.read().splitlines()[1].split("\t")[0])
    except (OSError, IndexError, ValueError):
        return default


def run_priority(run):
    """Critical path first (Snakemake starts the ready job of highest priority): a run's priority
    is its expected wall seconds, from its benchmark record of the last pipeline run (else its
    time cap max_minutes; neither: 0), plus, for the run whose final NQS table 1's ablation trains
    against, the ablation's. Longest first keeps both cores busy to the end: the default run at
    55f8994 ended with figure 3's NIR run alone for 6 minutes while the other core idled."""
    seconds = recorded_seconds(run.benchmark, 60 * time_cap_minutes(run))
    if enabled("table1") and run == table1_fixed_nqs_run():
        seconds += ablation_priority()
    return round(seconds)


def time_cap_minutes(run):
    return preset_settings(run.preset).get("max_minutes") or 0


def ablation_priority(wildcards=None):
    """The table1_ablation rule's priority: its recorded wall seconds (else the fixed-NQS run's
    time cap), so that it starts as soon as its run ends. At b554440 it had none and was planned
    to run last, alone for 12 minutes."""
    return round(recorded_seconds(ABLATION_BENCHMARK, 60 * time_cap_minutes(table1_fixed_nqs_run())))


def vmc_priority(wildcards):
    """The vmc and run_config rules' priority: :func:`run_priority` of the job's run."""
    return run_priority(Run.from_wildcards(wildcards))


def reference_priority(system, exact):
    """A reference job (ED if ``exact``, else a DMRG scan or its extrapolation) inherits the
    highest priority of the VMC runs that wait for it as their reference, so a long run's whole
    chain starts first; a reference no run waits for (figure 4's DMRG lines on ED lattices): 0.
    Snakemake's priorities do not pass to a job's inputs by themselves: at 3aea595 the default
    run started figure 4's DMRG scans while the long VMC runs waited for theirs."""
    if has_ed(system) != exact:
        return 0
    return max((run_priority(run) for run in all_runs() if run.system == system), default=0)


def ed_priority(wildcards):
    return reference_priority(System.from_wildcards(wildcards), exact=True)


def dmrg_priority(wildcards):
    """The dmrg and extrapolate rules' priority (their wildcards: lx, ly, bc, g, K, chis)."""
    system = System("tfi", int(wildcards.lx), int(wildcards.ly), wildcards.bc, float(wildcards.g), int(wildcards.K))
    return reference_priority(system, exact=False)


def accuracy_runs():
    """The accuracy benchmarks: ``{case: Run}`` (config block `accuracy`)."""
    runs = {}
    for case, spec in config.get("accuracy", {}).items():
        model = spec.get("model", "tfi")
        coupling = spec["g"] if model == "tfi" else spec["j2"]
        system = System(model, *parse_lattice(spec["lattice"], f"accuracy.{case}"), spec["bc"], coupling, spec["states"])
        runs[case] = Run(spec["preset"], system, spec["sampler"], spec.get("seed", 0))
    return runs


EXPERIMENT_RUNS = {"fig2": fig2_runs, "fig3": fig3_runs, "fig4": fig4_runs, "table1": table1_runs}


def enabled(name):
    return EXPERIMENTS[name]["enabled"]


def all_runs():
    runs = set()
    for name, plan in EXPERIMENT_RUNS.items():
        if enabled(name):
            runs.update(plan())
    if enabled("fig2"):
        runs.update(fig2_training_runs())
    return sorted(runs, key=repr)


def reference_targets():
    """Every ED / DMRG / extrapolation file the enabled experiments need."""
    files = set()
    for run in all_runs():
        reference = reference_file(run.system)
        if reference is not None:
            files.add(reference)
    if enabled("fig4"):
        for system in fig4_systems():
            files.update([dmrg_file(system), extrapolated_file(system)])
            if has_ed(system):
                files.add(ed_file(system))
    return sorted(files)


# --------------------------------------------------------------------------- targets
def figures(*names):
    return [f"{FIGURES}/{name}.{ext}" for name in names for ext in FIGURE_FORMATS]


def experiment_targets(name):
    if not enabled(name):
        return []
    return {
        "fig2": figures("fig2_energy_vs_g", "fig2_training"),
        "fig3": figures("fig3_jsd"),
        "fig4": figures("fig4_levels", "fig4_error"),
        "table1": [TIDY_CSV["table1"], f"{RESULTS}/table1.md", *figures("table1_ablation")],
    }[name]


def final_targets():
    return [target for name in EXPERIMENT_RUNS for target in experiment_targets(name)] + [
        f"{RESULTS}/claims.csv",
        f"{RESULTS}/claims.md",
    ]


def claims_inputs():
    """The tidy CSV of each enabled experiment, by name (the inputs of the rule claims)."""
    return {name: path for name, path in TIDY_CSV.items() if enabled(name)}


# --------------------------------------------------------------------------- provenance
START_FILE = f"{RESULTS}/logs/pipeline_start.txt"


def record_start():
    """Called by `onstart`: remember when this Snakemake invocation started doing work."""
    os.makedirs(os.path.dirname(START_FILE), exist_ok=True)
    with open(START_FILE, "w") as handle:
        handle.write(f"{time.time()}\n")


def check_run_options():
    """Every planned run's options (its RUN.yaml) checked by nirbench itself, before any job:
    unknown options, wrong types and out-of-range values name the preset and a run of it; a key
    that is not a run option, or that the experiment sets itself, names its block even where no
    run uses it. Every problem is reported at once, one line each."""
    problems = {}
    blocks = {"vmc": config["vmc"], **{f"presets.{name}": preset for name, preset in config["presets"].items()}}
    for key, block in blocks.items():
        try:
            names = set(flatten_sections(block)) - {"recipe"}
        except ValueError as error:
            problems[key] = str(error)
            continue
        if names & set(EXPERIMENT_KEYS):
            problems[key] = f"{sorted(names & set(EXPERIMENT_KEYS))} are set by each experiment, not here"
        elif names - HYPER_KEYS:
            problems[key] = f"unknown run options {sorted(names - HYPER_KEYS)}; `nirbench vmc --help` lists them"
    for run in [*all_runs(), *accuracy_runs().values()]:
        key = f"presets.{run.preset.partition('-')[0]}"
        if key in problems:
            continue
        try:
            VMCConfig.from_dict(run_settings(run))
        except ValueError as error:
            problems[key] = f"(run {run.dir}): {error}"
    if problems:
        lines = "\n".join(f"config key {key}: {problem}" for key, problem in problems.items())
        raise ValueError(f"{len(problems)} bad run option setting(s):\n{lines}")


check_config(config)
check_run_options()
