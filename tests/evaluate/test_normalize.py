import importlib.metadata

import pytest

from omnirouter.evaluate import normalize
from omnirouter.evaluate.normalize import (
    NormalizerUnavailableError,
    get_normalizer,
    whisper_package_version,
)


@pytest.fixture(scope="module")
def english():
    return get_normalizer("whisper-english")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # titles are spelled out
        ("Mr. Smith met Dr. Jones", "mister smith met doctor jones"),
        # spelled-out numbers become digits, currency and percent are kept as symbols
        ("twenty five", "25"),
        ("one hundred and two", "102"),
        ("It costs twenty-five dollars", "it costs $25"),
        ("ten percent", "10%"),
        # contractions are expanded
        ("I can't go, won't you?", "i can not go will not you"),
        ("they're here", "they are here"),
        # British spellings become American ones
        ("the colour of the theatre", "the color of the theater"),
        ("organise", "organize"),
        # case and punctuation go, hesitations are dropped
        ("Hello, World!", "hello world"),
        ("uh I um think so", "i think so"),
        ("", ""),
    ],
)
def test_english_normaliser(english, text, expected):
    assert english(text) == expected


def test_version_is_the_installed_package(english):
    assert english.version == importlib.metadata.version("openai-whisper")
    assert english.name == "whisper-english"


def test_none_leaves_text_alone():
    assert get_normalizer("none")("Mr. X, 25!") == "Mr. X, 25!"


def test_unknown_name():
    with pytest.raises(ValueError, match="whisper-english"):
        get_normalizer("whisper")


def test_missing_package_names_the_install_command(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(normalize.importlib.metadata, "version", not_installed)
    with pytest.raises(NormalizerUnavailableError, match="pip install --no-deps openai-whisper"):
        whisper_package_version()
