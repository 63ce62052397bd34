"""Text normalisation applied to references and hypotheses before WER.

The paper (§V-D) scores with the Whisper English normaliser (Radford et al. 2023). We call the
canonical one, `whisper.normalizers.EnglishTextNormalizer` from the `openai-whisper` package,
and record that package's version in every report: its rules (numbers, British spellings,
contractions, titles such as "Mr." → "mister", fillers such as "uh" removed) move WERs, so
scores are only comparable under the same version. The `whisper-normalizer` package on the
package index is a different, modified copy and gives different WERs.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Callable
from dataclasses import dataclass

WHISPER_ENGLISH = "whisper-english"
NO_NORMALIZATION = "none"
NORMALIZER_NAMES = (WHISPER_ENGLISH, NO_NORMALIZATION)

_WHISPER_DISTRIBUTION = "openai-whisper"
_INSTALL_HINT = (
    "the Whisper English normaliser needs the openai-whisper package; install it with "
    "`pip install --no-deps openai-whisper` (its import-time needs, torch, numba, tiktoken, "
    "regex and more-itertools, come with omnirouter)"
)


class NormalizerUnavailableError(ImportError):
    """The package that provides a normaliser is not installed."""


@dataclass(frozen=True)
class TextNormalizer:
    """A named text transform and the version of the code behind it, for reports."""

    name: str  # one of NORMALIZER_NAMES
    version: str  # version of the package that implements it; "" when there is none
    transform: Callable[[str], str]

    def __call__(self, text: str) -> str:
        return self.transform(text)


def whisper_package_version() -> str:
    """Installed version of openai-whisper; raises NormalizerUnavailableError if absent."""
    try:
        return importlib.metadata.version(_WHISPER_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise NormalizerUnavailableError(_INSTALL_HINT) from None


@functools.cache
def whisper_english_normalizer() -> TextNormalizer:
    """The canonical Whisper English normaliser (built once: it loads a spelling table)."""
    version = whisper_package_version()
    try:
        from whisper.normalizers import EnglishTextNormalizer
    except ImportError as error:
        raise NormalizerUnavailableError(f"{_INSTALL_HINT}; importing it failed: {error}") from None
    return TextNormalizer(WHISPER_ENGLISH, version, EnglishTextNormalizer())


def _unchanged(text: str) -> str:
    return text


def get_normalizer(name: str = WHISPER_ENGLISH) -> TextNormalizer:
    """`whisper-english` (the paper's scoring) or `none` (raw strings, e.g. for debugging)."""
    if name == WHISPER_ENGLISH:
        return whisper_english_normalizer()
    if name == NO_NORMALIZATION:
        return TextNormalizer(NO_NORMALIZATION, "", _unchanged)
    raise ValueError(f"unknown normaliser {name!r}; choose one of {', '.join(NORMALIZER_NAMES)}")
