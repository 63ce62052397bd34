"""The override parser, fed anything a user might type: a config or our own error, never a
traceback of another kind."""

from hypothesis import example, given, settings
from hypothesis import strategies as st

from omnirouter.config import load_config
from omnirouter.errors import OmnirouterError
from omnirouter.train.config import RunConfig

KEYS = st.sampled_from(
    [
        "model.family",
        "model.num_experts",
        "model.dispatch",
        "train.optimizer.peak_lr",
        "train.max_steps",
        "data.max_duration",
        "data.tokenizer.vocab_size",
        "nonsense.key",
        "model",
        "",
    ]
)
VALUES = st.one_of(
    st.text(max_size=12),
    st.integers(-(10**6), 10**6).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(str),
    st.sampled_from(["[1,2]", "{a: 1}", "null", "omni", "-0.003", "'", "[", "}", "=", "==="]),
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(st.lists(st.one_of(st.tuples(KEYS, VALUES).map("=".join), st.text(max_size=20)), max_size=3))
@example(["train.optimizer.peak_lr=-0.003"])
@example(["model.dispatch=bogus"])
@example(["model=[1"])
def test_any_override_gives_a_config_or_our_own_error(overrides: list[str]) -> None:
    try:
        config = load_config(RunConfig, [], overrides)
    except OmnirouterError:
        return
    assert isinstance(config, RunConfig)
