"""The experiment report: `README.md` and a self-contained `index.html` in the report directory,
with the figures next to them, so the folder can be committed as it is. It is built from the
gathered `ExperimentResults`, the figures already drawn and a `ReportSetup` (how the experiment
was run, in plain values), never from the experiment's live objects.

    REPORT_DIR/README.md  index.html       the report
    REPORT_DIR/figures/training_loss.png   every run's training CTC loss
    REPORT_DIR/figures/learning_curves.png every run's dev WER, and its training and dev CTC
                                           loss per token, at its validations
    REPORT_DIR/routing/                    the routing analysis page, figures and statistics
    REPORT_DIR/compare.{md,csv,json}       WER per set per model (seed means), reductions
    REPORT_DIR/experiment.json             every number of the report
    REPORT_DIR/config.yaml                 the resolved experiment configuration
    REPORT_DIR/stages.json                 when each stage's work ran and how long it took
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omnirouter.jsonio import write_json
from omnirouter.report.experiment_results import ExperimentResults, results_to_dict
from omnirouter.report.experiment_sections import (
    routing_section,
    training_section,
    wer_sections,
)
from omnirouter.report.figures import draw_learning_curves, draw_training_loss
from omnirouter.report.findings import Finding
from omnirouter.report.inference_sections import (
    ProposalSweeps,
    offload_report_section,
    proposal_report_section,
)
from omnirouter.report.lm_section import lm_section
from omnirouter.report.page import (
    Page,
    PageFiles,
    Paragraph,
    Section,
    Table,
    render_html,
    render_markdown,
)
from omnirouter.report.routing_page import FigureFiles

FIGURES_DIR = "figures"
ROUTING_DIR = "routing"  # the routing analysis page, redrawn inside the report directory
README_FILE = "README.md"
HTML_FILE = "index.html"
RESULTS_FILE = "experiment.json"


@dataclass(frozen=True)
class ReportFigures:
    training_loss: Path | None
    routing: FigureFiles | None  # None when no routing analysis ran
    routing_page: Path | None  # the analysis page (HTML) inside the report directory
    offload: Path | None = None  # the offloading study's JSON inside the report directory
    learning_curve: Path | None = None  # dev WER (and losses per token) at the validations


def draw_training_figures(
    results: ExperimentResults, report_dir: Path
) -> tuple[Path | None, Path | None]:
    """Every run's training loss, and its learning curves (dev WER and losses per token at the
    validations), in REPORT_DIR/figures/; None for a figure without data."""
    curves = [
        dataclasses.replace(
            loss.curve,
            name=f"{model.name} seed {loss.seed}" if len(model.losses) > 1 else model.name,
        )
        for model in results.models
        for loss in model.losses
        if loss.curve.steps
    ]
    training_loss = (
        draw_training_loss(curves, report_dir / FIGURES_DIR / "training_loss.png")
        if curves
        else None
    )
    # Every curve, validated or not, so that a run has one colour in both figures.
    learning_curve = (
        draw_learning_curves(curves, report_dir / FIGURES_DIR / "learning_curves.png")
        if any(curve.valid_steps for curve in curves)
        else None
    )
    return training_loss, learning_curve


def write_report(page: Page, results: ExperimentResults, directory: Path) -> PageFiles:
    """The page as README.md and index.html, and its numbers as experiment.json."""
    markdown, html = directory / README_FILE, directory / HTML_FILE
    markdown.write_text(render_markdown(page, directory))
    html.write_text(render_html(page))
    write_json(directory / RESULTS_FILE, results_to_dict(results))
    return PageFiles(markdown, html)


@dataclass(frozen=True)
class Recipe:
    """The shared training recipe, as the Models section states it."""

    max_duration: float  # seconds of audio per batch
    grad_accumulation: int
    peak_lr: float
    warmup_steps: int
    cosine_steps: int
    load_balance_weight: float
    vocab_size: int


@dataclass(frozen=True)
class StageTime:
    """One stage's row of the wall-time table (measured by the experiment's ledger)."""

    stage: str
    tasks: int
    seconds: float  # tasks that ran side by side count once
    first_started: str  # ISO time (UTC), "" when no task was timed
    last_ended: str
    ran: int  # tasks that ran in the latest invocation (the others were found done)


@dataclass(frozen=True)
class ReportSetup:
    """How the experiment was run, in plain values."""

    command: str
    report_dir: Path
    exp_root: Path
    run_dirs: tuple[Path, ...]
    model_changes: tuple[tuple[str, ...], ...]  # per model: its files and overrides
    recipe: Recipe
    stage_times: tuple[StageTime, ...]
    proposals: ProposalSweeps


def build_page(results: ExperimentResults, figures: ReportFigures, setup: ReportSetup) -> Page:
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    intro = [
        Paragraph(
            results.description.strip()
            or f"Dense, Switch and Omni-router models trained and compared on {results.corpus.name}."
        ),
        Paragraph(f"Command: `{setup.command}` (written {when})."),
    ]
    sections = [
        findings_section(results),
        corpus_section(results),
        models_section(results, setup.model_changes, setup.recipe),
        *wer_sections(results),
        *([lm_section(results.lm)] if results.lm is not None else []),
        training_section(results, figures.training_loss, figures.learning_curve),
        routing_section(results, figures.routing, figures.routing_page, setup.report_dir),
        offload_report_section(figures.offload),
        proposal_report_section(setup.proposals),
        Section("Wall time per stage", (stage_table(setup.stage_times),)),
        Section("Software", (versions_table(results),)),
        files_section(setup),
    ]
    return Page(f"Experiment {results.name}", tuple(sections), tuple(intro))


# ---------------------------------------------------------------- findings


VERDICTS = {True: "as in the paper", False: "differs from the paper", None: "not decided here"}
ONE_SEED_VERDICT = " (one seed: the spread is not known)"


def verdict(finding: Finding) -> str:
    """The finding's verdict; a comparison made on one seed says so (its paragraph does too)."""
    text = VERDICTS[finding.agrees]
    return text + ONE_SEED_VERDICT if finding.one_seed and finding.agrees is not None else text


def findings_section(results: ExperimentResults) -> Section:
    blocks: list = [
        Table(
            ("topic", "here"),
            tuple((finding.topic, verdict(finding)) for finding in results.findings),
            "The paper's findings (Gu, Likhomanenko and Jaitly 2025) and whether this "
            "experiment shows them; each is stated below.",
        )
    ]
    blocks += [
        Paragraph(
            f"{finding.topic}: {verdict(finding)}. The paper: {finding.paper}. "
            f"Here: {finding.observed}"
        )
        for finding in results.findings
    ]
    if results.explanations:
        blocks.append(Paragraph("What might explain the differences:"))
        blocks += [Paragraph(f"– {reason}.") for reason in results.explanations]
    return Section("Findings", tuple(blocks))


# ---------------------------------------------------------------- set-up


def corpus_section(results: ExperimentResults) -> Section:
    corpus = results.corpus
    voices = corpus.extra.get("sets", {}) if results.synthetic_corpus else {}
    rows = tuple(
        (
            info.name,
            info.role,
            str(info.num_utterances),
            f"{info.hours:.3f}",
            _voices(voices.get(info.name)),  # type: ignore[union-attr]
            _conditions(voices.get(info.name)),  # type: ignore[union-attr]
            info.description,
        )
        for info in corpus.sets
    )
    built = (
        f"built from text-to-speech engines (seed {corpus.extra.get('seed')}, "
        f"scale {corpus.extra.get('scale')})"
        if results.synthetic_corpus
        else "prepared from recordings"
    )
    total = sum(info.hours for info in corpus.sets)
    blocks: list = [
        Paragraph(
            f"`{results.corpus_dir}`: corpus {corpus.name}, {built}; {total:.2f} h in all. "
            f"{corpus.description}".strip()
        ),
        Table(
            ("set", "role", "utterances", "hours", "voices", "conditions", "what it tests"), rows
        ),
    ]
    overlap = _shared_conditions(corpus.sets, voices) if results.synthetic_corpus else None
    if overlap is not None:
        blocks.append(Paragraph(overlap))
    if results.corpus_config_differs:
        blocks.append(
            Paragraph(
                "Note: this corpus was built from another synth configuration than the "
                "experiment names (`corpus.synth_config` and its overrides); it was used as it is."
            )
        )
    return Section("Corpus", tuple(blocks))


def models_section(
    results: ExperimentResults, model_changes: Sequence[Sequence[str]], recipe: Recipe
) -> Section:
    rows = []
    for model, changes in zip(results.models, model_changes):
        experts = f"{model.num_experts} (top-{model.top_k})" if model.num_experts else "–"
        steps = ", ".join(str(step) for step in model.trained_steps)
        rows.append(
            (
                model.name,
                model.family,
                experts,
                f"{model.num_layers} × {model.model_dim} (FFN {model.ffn_dim})",
                _millions(model.total_parameters),
                _millions(model.active_parameters),
                f"{steps} of {model.max_steps}",
                f"{len(model.seeds)} ({', '.join(str(seed) for seed in model.seeds)})",
                " ".join(f"`{item}`" for item in changes) or "–",
            )
        )
    header = (
        "model",
        "family",
        "experts",
        "blocks × dim",
        "parameters (M)",
        "active per frame (M)",
        "trained steps",
        "seeds (their values)",
        "files and overrides on the shared run config",
    )
    text = Paragraph(
        "Shared recipe (before each model's files and overrides): batches of at most "
        f"{recipe.max_duration:g} s of audio × "
        f"{recipe.grad_accumulation} accumulation, AdamW at peak learning rate "
        f"{recipe.peak_lr:g} (warm-up {recipe.warmup_steps} steps, cosine "
        f"{recipe.cosine_steps}), load-balance weight {recipe.load_balance_weight:g}, "
        f"vocabulary of {recipe.vocab_size} pieces at most. Active "
        "parameters exclude the experts a frame does not visit."
    )
    return Section("Models", (Table(header, tuple(rows)), text))


def stage_table(stage_times: Sequence[StageTime]) -> Table:
    rows = [
        (
            time.stage,
            str(time.tasks),
            _duration(time.seconds),
            _span(time.first_started, time.last_ended),
            f"{time.ran} ran, {time.tasks - time.ran} found done",
        )
        for time in stage_times
    ]
    total = sum(time.seconds for time in stage_times)
    rows.append(("all", "", _duration(total), "", ""))
    return Table(
        ("stage", "tasks", "wall time", "when (UTC)", "latest invocation"),
        tuple(rows),
        "Wall time of the work behind every result (a task found done keeps the time it took "
        "when it ran; tasks done before the first recorded invocation count 0 s; tasks that "
        "ran side by side count once).",
    )


def versions_table(results: ExperimentResults) -> Table:
    rows = tuple((name, version) for name, version in results.versions.items())
    return Table(
        ("package", "version"),
        rows,
        f"WER normaliser: {results.normalizer} (the `openai-whisper` package).",
    )


# ---------------------------------------------------------------- files


def files_section(setup: ReportSetup) -> Section:
    texts = [
        "In this folder: `config.yaml` (the resolved experiment configuration: "
        f"`omnirouter experiment {setup.report_dir / 'config.yaml'}` repeats the experiment), "
        "`stages.json` (timings), `experiment.json` (every number above), "
        "`compare.{md,csv,json}` (WER table of the seed means), `routing/` (the routing "
        "analysis page and its statistics), `figures/`.",
        f"Runs (checkpoints, metrics, per-utterance errors) and the routing records under "
        f"`{setup.exp_root}`; "
        "each is one `omnirouter train EXP/config.yaml --exp-dir EXP` and "
        "`omnirouter eval EXP`: " + ", ".join(f"`{run_dir}`" for run_dir in setup.run_dirs) + ".",
    ]
    return Section("Files", tuple(Paragraph(text) for text in texts))


def _voices(details: dict | None) -> str:
    """'espeak 4, flite 1' from a synthetic set's voice list ('–' when unknown)."""
    if not details or not details.get("voices"):
        return "–"
    engines = [voice.split(":", 1)[0] for voice in details["voices"]]
    return ", ".join(f"{engine} {engines.count(engine)}" for engine in dict.fromkeys(engines))


def _conditions(details: dict | None) -> str:
    """'clean 50%, babble 13%, …; codecs gsm, alaw' from a synthetic set's condition record."""
    record = (details or {}).get("conditions")
    if not record:
        return "–"
    shares = ", ".join(f"{kind} {share:.0%}" for kind, share in record["shares"].items())
    codecs = f"; codecs {', '.join(record['codecs'])}" if record.get("codecs") else ""
    return shares + codecs


def _shared_conditions(sets: Sequence, details: dict) -> str | None:
    """Whether any noise signal, room, band limit or codec of a training set is also in a test
    set."""
    records = {info.name: (details.get(info.name) or {}).get("conditions") for info in sets}
    if not any(records.values()):
        return None
    shared = []
    for aspect in ("noise_signals", "rooms", "bands", "codecs"):
        trained = {
            x for info in sets if info.role == "train" for x in _aspect(records, info, aspect)
        }
        tested = {x for info in sets if info.role == "test" for x in _aspect(records, info, aspect)}
        shared += sorted(trained & tested)
    if shared:
        return "Conditions both in training and in a test set: " + ", ".join(shared) + "."
    return (
        "No noise signal, room, band limit or codec of the training sets occurs in a test set "
        "(kinds may be near: see the corpus config)."
    )


def _aspect(records: dict, info: Any, aspect: str) -> list[str]:
    return list((records.get(info.name) or {}).get(aspect, ()))


def _millions(count: int) -> str:
    return f"{count / 1e6:.3f}" if count < 1e7 else f"{count / 1e6:.1f}"


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.1f} s"
    minutes = seconds / 60
    return f"{minutes:.1f} min" if minutes < 120 else f"{minutes / 60:.2f} h"


def _span(first: str, last: str) -> str:
    if not first:
        return "–"
    start, end = first[:16].replace("T", " "), last[:16].replace("T", " ")
    return f"{start} – {end[11:] if end[:10] == start[:10] else end}"
