"""An experiment's configuration: one corpus, several models trained with several seeds, their
evaluation, the routing analysis and the report (`omnirouter experiment CONFIG`).

Every model is the shared `run` (a `RunConfig`) changed by the model's own dotted overrides,
for example `model.family=switch`; each is trained once per seed, in
`EXP_ROOT/<model>/seed<k>`.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from omnirouter.analysis.config import AnalysisConfig
from omnirouter.config import (
    ConfigError,
    config_from_dict,
    config_to_dict,
    load_config,
    read_yaml,
    require,
)
from omnirouter.evaluate.proposals import Aggregate, ProposalConfig
from omnirouter.model.routing import ProposalMode
from omnirouter.train.config import RunConfig

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


@dataclass(frozen=True)
class CorpusStageConfig:
    corpus_dir: str = "data/builtin"  # every model trains and is evaluated on this corpus
    # SynthConfig YAML the corpus is built from when it is missing; "" = a corpus prepared some
    # other way (`omnirouter data prepare | import`), which must already exist.
    synth_config: str = "configs/data/builtin.yaml"
    synth_overrides: list[str] = field(default_factory=list)  # key.sub=value on the synth config
    jobs: int = 0  # worker processes of the corpus build; 0 = one per CPU

    def __post_init__(self) -> None:
        require(self.jobs >= 0, "corpus.jobs", ">= 0 (0 = one per CPU)", self.jobs)


@dataclass(frozen=True)
class ModelEntry:
    name: str = ""  # shown in tables and figures; the experiment directory's name
    # RunConfig YAML files merged onto the shared run config, in order, before the overrides
    # (e.g. configs/experiments/paper/librispeech.yaml and .../omni-8e.yaml).
    files: list[str] = field(default_factory=list)
    overrides: list[str] = field(default_factory=list)  # dotted RunConfig overrides
    seeds: list[int] = field(default_factory=list)  # empty = the experiment's seeds


@dataclass(frozen=True)
class ExperimentAnalysisConfig(AnalysisConfig):
    """The routing analysis's settings, plus which models it looks at."""

    enabled: bool = True
    models: list[str] = field(default_factory=list)  # empty = every MoE model (first seed each)


@dataclass(frozen=True)
class ProposalStudyConfig:
    """Routed proposals (after RoE; `omnirouter eval --proposals`) of the analysed MoE
    models: WER and CER against the number K of proposals per frame, with the cost of each."""

    enabled: bool = True
    sets: list[str] = field(default_factory=list)  # empty = the analysis set
    counts: list[int] = field(default_factory=lambda: [1, 2, 4, 8])
    temperature: float = ProposalConfig.temperature  # Gumbel noise scale on router logits
    mode: ProposalMode = ProposalMode.gumbel  # gumbel (RoE) | ranked
    aggregate: Aggregate = Aggregate.probability  # probability (RoE) | log
    seed: int = 0

    def __post_init__(self) -> None:
        counts = self.counts
        require(bool(counts) and min(counts) >= 1, "proposals.counts", "integers >= 1", counts)
        temperature = self.temperature
        require(temperature >= 0, "proposals.temperature", ">= 0", temperature)

    def proposal_config(self) -> ProposalConfig:
        return ProposalConfig(1, self.temperature, self.mode, self.aggregate, self.seed)


@dataclass(frozen=True)
class LmDecodingConfig:
    """Beam search with a word n-gram LM beside the greedy results (`omnirouter lm`): the
    corpus stage builds the LM from the corpus's training text, the lm stage tunes the LM
    weight and word score of each model's first seed on the dev set and decodes every
    evaluation set with them. The findings stay on greedy WER, as in the paper."""

    enabled: bool = True
    order: int = 3  # n-gram order of the LM (KenLM lmplz, modified Kneser-Ney)
    beam_size: int = 64
    lexicon: bool = True  # the LM's words only (False: the open-vocabulary search)
    # The dev-set grid: LM weight (scale of ln P_lm) and score per word.
    lm_weights: list[float] = field(default_factory=lambda: [0.4, 0.65, 0.9])
    word_scores: list[float] = field(default_factory=lambda: [1.0, 2.0, 3.0])

    def __post_init__(self) -> None:
        require(1 <= self.order <= 6, "lm.order", "1 to 6 (KenLM)", self.order)
        require(self.beam_size >= 1, "lm.beam_size", ">= 1", self.beam_size)
        require(bool(self.lm_weights), "lm.lm_weights", "a non-empty list", self.lm_weights)
        require(bool(self.word_scores), "lm.word_scores", "a non-empty list", self.word_scores)


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = "experiment"
    description: str = ""  # one paragraph for the top of the report
    corpus: CorpusStageConfig = field(default_factory=CorpusStageConfig)
    run: RunConfig = field(default_factory=RunConfig)  # the base of every model's run config
    models: list[ModelEntry] = field(default_factory=list)
    seeds: list[int] = field(default_factory=lambda: [0])  # train.seed of each run of a model
    baseline: str = ""  # model the relative WER reductions are computed against; "" = first
    eval_sets: list[str] = field(default_factory=list)  # empty = the dev set and every test set
    eval_device: str = "auto"  # "auto" (CUDA when available), "cpu", "cuda", "cuda:1", ...
    analysis: ExperimentAnalysisConfig = field(default_factory=ExperimentAnalysisConfig)
    proposals: ProposalStudyConfig = field(default_factory=ProposalStudyConfig)
    lm: LmDecodingConfig = field(default_factory=LmDecodingConfig)
    cpu_threads: int = 0  # torch threads on CPU while the experiment runs; 0 = torch's default
    # Runs trained at once, each in a process of its own (with cpu_threads threads). On a CPU,
    # small models use one core each far better than two threads share one model; more jobs
    # than cores still pay when the runs differ in speed (the MoE runs are the slower).
    train_jobs: int = 1
    exp_root: str = ""  # the runs' directories; "" = exp/<name>
    report_dir: str = ""  # the report (commit-able: no checkpoints or audio); "" = reports/<name>

    def __post_init__(self) -> None:
        _check_name(self.name, "name")
        if not self.models:
            raise ValueError("models: the experiment names no model")
        names = [model.name for model in self.models]
        for position, name in enumerate(names):
            _check_name(name, f"models[{position}].name")
        _check_unique(names, "models: model names")
        _check_unique(self.seeds, "seeds")
        if not self.seeds:
            raise ValueError("seeds: give at least one seed")
        for model in self.models:
            _check_unique(model.seeds, f"models[{model.name}].seeds")
        if self.baseline and self.baseline not in names:
            raise ValueError(f"baseline: {self.baseline!r} is not one of the models {names}")
        unknown = [name for name in self.analysis.models if name not in names]
        if unknown:
            raise ValueError(f"analysis.models: {unknown} are not among the models {names}")
        _check_unique(self.eval_sets, "eval_sets")
        require(
            self.cpu_threads >= 0, "cpu_threads", ">= 0 (0 = torch's default)", self.cpu_threads
        )
        require(self.train_jobs >= 1, "train_jobs", ">= 1", self.train_jobs)

    @property
    def baseline_name(self) -> str:
        return self.baseline or self.models[0].name

    @property
    def exp_root_dir(self) -> Path:
        return Path(self.exp_root or Path("exp") / self.name)

    @property
    def report_path(self) -> Path:
        return Path(self.report_dir or Path("reports") / self.name)

    def seeds_of(self, model: ModelEntry) -> list[int]:
        return list(model.seeds or self.seeds)


@dataclass(frozen=True)
class PlannedRun:
    """One training run of the experiment: a model with one seed."""

    model: str
    seed: int
    exp_dir: Path
    config: RunConfig

    @property
    def label(self) -> str:
        return f"{self.model}/seed{self.seed}"


def load_experiment_config(
    path: str | Path | None, overrides: list[str] | tuple[str, ...] = ()
) -> ExperimentConfig:
    """The experiment config of a YAML file (and key.sub=value overrides), with every model's
    run config built once so a bad model override fails here, naming the model."""
    try:
        config = load_config(ExperimentConfig, [path] if path is not None else [], overrides)
    except ConfigError:
        raise
    except ValueError as error:  # a check of a config's __post_init__
        raise ConfigError(f"{path or 'experiment config'}: {error}") from None
    plan_runs(config)
    return config


def plan_runs(config: ExperimentConfig) -> list[PlannedRun]:
    """Every (model, seed) run in config order, with its resolved run config and directory."""
    runs = []
    for model in config.models:
        base = model_run_config(config, model)
        for seed in config.seeds_of(model):
            train = dataclasses.replace(base.train, seed=seed)
            runs.append(
                PlannedRun(
                    model=model.name,
                    seed=seed,
                    exp_dir=config.exp_root_dir / model.name / f"seed{seed}",
                    config=dataclasses.replace(base, train=train),
                )
            )
    return runs


def model_run_config(config: ExperimentConfig, model: ModelEntry) -> RunConfig:
    """The shared run config with the model's files and overrides; the corpus is always the
    experiment's. Checked once, at the end: the error names the key (and the model)."""
    context = f"models[{model.name}]"
    merged = OmegaConf.create(config_to_dict(config.run))
    try:
        for path in model.files:
            merged = OmegaConf.merge(merged, read_yaml(path))
        for override in model.overrides:
            if "=" not in override:
                raise ConfigError(f"override {override!r} is not of the form key.sub=value")
            merged = OmegaConf.merge(merged, OmegaConf.from_dotlist([override]))
        values = OmegaConf.to_container(merged)
        values["data"]["corpus_dir"] = config.corpus.corpus_dir  # type: ignore[index]
        return config_from_dict(RunConfig, values)  # type: ignore[arg-type]
    except (OmegaConfBaseException, ValueError) as error:  # ConfigError is a ValueError
        raise ConfigError(f"{context}: {error}") from None


def _check_name(name: str, key: str) -> None:
    if not _NAME.fullmatch(name):
        raise ValueError(
            f"{key}: {name!r} must start with a letter or digit and hold only letters, digits, "
            "'.', '_' and '-' (it names a directory)"
        )


def _check_unique(values: list, key: str) -> None:
    repeated = sorted({str(value) for value in values if values.count(value) > 1})
    if repeated:
        raise ValueError(f"{key}: {', '.join(repeated)} given more than once")
