"""Word n-gram LMs (evaluate/lm.py): KenLM's estimate read back through the `kenlm` module
agrees with its own ARPA file, and bad LM files are refused with their names."""

import math
import random

import pytest

from omnirouter.data.tokenizer import Tokenizer
from omnirouter.evaluate.beam import BeamDecoder
from omnirouter.evaluate.lm import LanguageModelError, build_lm, load_lm

kenlm = pytest.importorskip("kenlm")

TEXTS = [
    "The cat sat on the mat.",
    "the cat ate the rat",
    "A cat and a rat sat",
    "the mat was flat",
    "that cat is fat",
    "the rat sat on the cat",
]


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    directory = tmp_path_factory.mktemp("lm") / "lm"
    info = build_lm(TEXTS, directory, order=3)
    assert info.order == 3 and info.sentences == len(TEXTS)
    return directory


def read_arpa(path):
    """{n-gram tuple: (log10 prob, log10 back-off)}, parsed here independently of KenLM."""
    grams, inside = {}, False
    for line in path.read_text().splitlines():
        if line.endswith("-grams:"):
            inside = True
            continue
        if not line.strip() or line.startswith("\\"):
            inside = False if line.startswith("\\end") else inside
            continue
        if inside:
            fields = line.split("\t")
            backoff = float(fields[2]) if len(fields) > 2 else 0.0
            grams[tuple(fields[1].split())] = (float(fields[0]), backoff)
    return grams


def arpa_log10(grams, history, word):
    """log10 P(word | history) by the ARPA back-off rule."""
    if (*history, word) in grams:
        return grams[(*history, word)][0]
    if not history:
        return grams[("<unk>",)][0]
    backoff = grams.get(tuple(history), (0.0, 0.0))[1]
    return backoff + arpa_log10(grams, history[1:], word)


def arpa_sentence_log10(grams, sentence, order):
    words, total = ["<s>", *sentence.split(), "</s>"], 0.0
    for position in range(1, len(words)):
        history = tuple(words[max(0, position - order + 1) : position])
        total += arpa_log10(grams, history, words[position])
    return total


def test_normalised_text_and_kenlm_agrees_with_its_arpa(lm_dir):
    grams = read_arpa(lm_dir / "lm.arpa")
    words = {gram[0] for gram in grams if len(gram) == 1}
    assert "the" in words and "The" not in words and "mat." not in words  # normalised
    binary, arpa = kenlm.Model(str(lm_dir / "lm.bin")), kenlm.Model(str(lm_dir / "lm.arpa"))
    for sentence in ["the cat sat on the mat", "a rat sat", "the dog sat", "mat the on"]:
        expected = arpa_sentence_log10(grams, sentence, 3)
        assert binary.score(sentence) == pytest.approx(expected, abs=1e-4)
        assert arpa.score(sentence) == pytest.approx(expected, abs=1e-4)


def test_modified_kneser_ney_probabilities_sum_to_one(lm_dir):
    grams = read_arpa(lm_dir / "lm.arpa")
    vocabulary = [gram[0] for gram in grams if len(gram) == 1 and gram[0] != "<s>"]
    for history in [("<s>",), ("the", "cat"), ("cat",)]:
        total = sum(10 ** arpa_log10(grams, history, word) for word in vocabulary)
        assert total == pytest.approx(1.0, abs=1e-3)


def test_a_training_sentence_beats_its_shuffle(lm_dir):
    model = kenlm.Model(str(lm_dir / "lm.bin"))
    rng = random.Random(0)
    sentence = "the cat sat on the mat"
    words = sentence.split()
    shuffled = sentence
    while shuffled == sentence:
        rng.shuffle(words)
        shuffled = " ".join(words)
    assert model.score(sentence) > model.score(shuffled)
    assert math.isfinite(model.score(shuffled))


def test_missing_lm_is_an_error_naming_it(tmp_path):
    with pytest.raises(LanguageModelError, match=str(tmp_path / "nowhere")):
        load_lm(tmp_path / "nowhere")


def test_corrupt_lm_is_an_error_naming_it(tmp_path, lm_dir):
    broken = tmp_path / "lm"
    broken.mkdir()
    (broken / "lm.bin").write_bytes(b"this is not a language model\n" * 10)
    (broken / "unigrams.txt").write_text("the\ncat\n")
    with pytest.raises(LanguageModelError, match=str(broken / "lm.bin")):
        load_lm(broken)


def test_lm_for_other_text_does_not_fit_the_tokenizer(tmp_path):
    tokenizer = Tokenizer.train(TEXTS, tmp_path / "tok", vocab_size=25)
    other = tmp_path / "other"
    build_lm(["день добрый мир", "добрый день"], other, order=2)
    with pytest.raises(LanguageModelError, match="do not fit the tokenizer"):
        BeamDecoder.from_tokenizer(tokenizer, other)


def test_failed_build_writes_nothing(tmp_path):
    target = tmp_path / "lm"
    with pytest.raises(LanguageModelError, match="no non-empty transcripts"):
        build_lm(["", "[noise]"], target)
    assert list(tmp_path.iterdir()) == []
