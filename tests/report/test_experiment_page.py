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


def test_the_corpus_table_names_conditions_and_any_shared_with_training() -> None:
    from omnirouter.data.corpus import SetInfo
    from omnirouter.report.experiment_page import _conditions, _shared_conditions

    train = {
        "shares": {"clean": 0.5, "babble": 0.5},
        "noise_signals": ["babble, seed 1"],
        "rooms": [],
        "codecs": ["gsm"],
    }
    test = {"shares": {"telephone": 1.0}, "noise_signals": [], "rooms": [], "codecs": ["mulaw"]}
    assert _conditions({"conditions": train}) == "clean 50%, babble 50%; codecs gsm"
    assert _conditions({}) == "–"
    sets = [SetInfo("train", "train", "", 2, 0.1), SetInfo("phone", "test", "", 2, 0.1)]
    disjoint = _shared_conditions(
        sets, {"train": {"conditions": train}, "phone": {"conditions": test}}
    )
    assert disjoint.startswith("No noise signal, room, band limit or codec")
    leaky = {**test, "codecs": ["gsm"]}
    shared = _shared_conditions(
        sets, {"train": {"conditions": train}, "phone": {"conditions": leaky}}
    )
    assert shared == "Conditions both in training and in a test set: gsm."
    assert _shared_conditions(sets, {}) is None
