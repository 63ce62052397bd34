"""The experiment page's findings verdicts: a comparison made on one seed says so in the table."""

from omnirouter.report.experiment_page import verdict
from omnirouter.report.findings import Finding


def test_a_one_seed_comparison_says_its_spread_is_unknown() -> None:
    seeded = Finding("WER", "Omni-router lowest", "here too", agrees=True)
    one_seed = Finding("Cramér's V", "higher for Omni-router", "here too", True, one_seed=True)
    undecided = Finding("Cramér's V", "higher for Omni-router", "no MoE model", None, one_seed=True)
    assert verdict(seeded) == "as in the paper"
    assert verdict(one_seed) == "as in the paper (one seed: the spread is not known)"
    assert verdict(undecided) == "not decided here"
