"""`omnirouter offload` on real experiment directories, and the latency model by hand."""

import json
from pathlib import Path

import pytest

from omnirouter.cli import main
from omnirouter.model.config import ModelConfig
from omnirouter.offload.cache import CacheStats
from omnirouter.offload.latency import (
    MemorySystem,
    ModelSize,
    paper_sizes,
    resident_latency_ms,
    step_latency_ms,
)
from omnirouter.offload.study import POLICIES

from ..analysis.test_experiments import tiny_experiment, tone_corpus


@pytest.fixture(scope="module")
def experiments(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    directory = tone_corpus(tmp_path_factory.mktemp("tones"))
    return (
        tiny_experiment(directory, "omni", directory / "omni-run"),
        tiny_experiment(directory, "switch", directory / "switch-run"),
    )


def test_offload_command_writes_every_simulation_and_redraws_from_records(
    experiments: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    omni, switch = experiments
    assert main(["offload", str(omni), "--compare", str(switch), "--device", "cpu"]) == 0
    directory = omni / "offload" / "dev"
    assert str(directory) in capsys.readouterr().out
    document = json.loads((directory / "offload.json").read_text())
    results = document["results"]
    # 2 models × 2 scopes × 2 cache sizes (E = 2) × every policy.
    assert len(results) == 2 * 2 * 2 * len(POLICIES)
    for result in results:
        steps = result["steps"]
        assert result["accesses"] == 3 * steps  # three MoE layers
        assert result["hits"] + result["demand_loads"] == result["accesses"]
        assert 0 <= result["wasted_loads"] <= result["prefetch_loads"] <= result["prefetches"]
    by_key = {(r["model"], r["scope"], r["slots_per_layer"], r["policy"]): r for r in results}
    for (model, scope, slots, policy), result in by_key.items():
        belady = by_key[(model, scope, slots, "belady")]
        if not policy.startswith("prefetch:"):
            assert belady["hits"] >= result["hits"]
        assert belady["demand_loads"] <= result["demand_loads"] + result["prefetch_loads"]
        if slots == 2:  # every expert of a layer fits: one cold miss per expert used
            assert result["demand_loads"] <= 2 * 3
    markdown = (directory / "report.md").read_text()
    assert "per-layer cache: hit rate" in markdown and "offload_hit_rate.png" in markdown
    assert (directory / "offload_hit_rate.png").stat().st_size > 0

    first = (directory / "offload.json").read_text()
    assert main(["offload", str(omni), "--from-records", "--cache-slots", "1"]) == 0
    again = json.loads((directory / "offload.json").read_text())
    assert {r["slots_per_layer"] for r in again["results"]} == {1}
    kept = [r for r in json.loads(first)["results"] if r["slots_per_layer"] == 1]
    assert again["results"] == kept  # the same records give the same simulations


def test_offload_refuses_bad_cache_sizes(experiments: tuple[Path, Path]) -> None:
    with pytest.raises(SystemExit):
        main(["offload", str(experiments[0]), "--cache-slots", "0,2"])


def test_offload_appears_in_the_command_list(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["-h"])
    assert "offload" in capsys.readouterr().out


def test_latency_model_by_hand() -> None:
    size = ModelSize.of(
        "d8",
        ModelConfig(
            model_dim=8, num_heads=2, num_layers=2, ffn_dim=16, family="omni", num_experts=2
        ),
        vocab_size=5,
    )
    expert = 2 * 8 * 16 + 8 + 16  # parameters of one expert
    assert size.expert_bytes == 2 * expert
    assert size.layer_active_bytes == 2 * (4 * 8 * 8 + 4 * 8 + 4 * 8 + expert)
    memory = MemorySystem("test", fast_gb_per_s=1.0, slow_gb_per_s=0.1)
    compute = size.layer_active_bytes / 1e9
    fetch = size.expert_bytes / 1e8
    # Per access: a quarter demand-fetched, half prefetched.
    stats = CacheStats(
        accesses=8,
        hits=6,
        demand_loads=2,
        prefetches=4,
        correct_prefetches=4,
        prefetch_loads=4,
        wasted_loads=0,
        steps=4,
    )
    expected = 2 * (compute + 0.25 * fetch + 0.5 * max(0.0, fetch - compute))
    assert step_latency_ms(stats, size, memory) == pytest.approx(1e3 * expected)
    # The lookahead's transfer overlaps only the next block's attention.
    attention = 2 * (4 * 8 * 8 + 4 * 8) / 1e9
    expected = 2 * (compute + 0.25 * fetch + 0.5 * max(0.0, fetch - attention))
    assert step_latency_ms(stats, size, memory, "attention") == pytest.approx(1e3 * expected)
    assert resident_latency_ms(size, memory) == pytest.approx(1e3 * 2 * compute)


def test_paper_sizes_have_the_papers_parameter_counts() -> None:
    # Table II: 84M trunk with 2 experts 156M, with 8 experts 559M; Table III: 246M, 345M.
    two = [size.parameters for size in paper_sizes("omni", 2)]
    assert [round(count / 1e6) for count in two] == [156, 246, 345]
    assert round(paper_sizes("switch", 8)[0].parameters / 1e6) == 559
