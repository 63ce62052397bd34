"""CTC beam search (evaluate/beam.py): greedy at beam size 1, the exact sum over CTC paths with
a wide beam, the LM's pull towards words it knows, and the search over the LM's words only
(flashlight-text), checked against sums over every CTC path and KenLM's own scores."""

import itertools
import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from omnirouter.data.tokenizer import Tokenizer
from omnirouter.evaluate.beam import BeamConfig, BeamDecoder
from omnirouter.evaluate.decode import greedy_ctc_decode
from omnirouter.evaluate.lm import build_lm, load_lm

pytest.importorskip("pyctcdecode")

TEXTS = [
    "the cat sat on the mat",
    "the cat ate the rat",
    "a cat and a rat sat",
    "the mat was flat",
    "that cat is fat",
]
# Letters and the word-start marker, one label each: the blank at 0, <unk> at 1.
LETTER_PIECES = ["<blk>", "<unk>", "▁", *"acehmnorstx"]
# Wide enough that nothing is pruned: the decoder then sums every CTC path of each prefix.
EXHAUSTIVE = BeamConfig(beam_size=10_000, beam_prune_logp=-1e4, token_min_logp=-1e4, processes=1)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory) -> Tokenizer:
    return Tokenizer.train(TEXTS, tmp_path_factory.mktemp("tok"), vocab_size=30)


def random_log_probs(steps: int, vocab: int, seed: int, sharpness: float = 2.0) -> np.ndarray:
    generator = np.random.default_rng(seed)
    logits = sharpness * generator.standard_normal((steps, vocab))
    return torch.from_numpy(logits).log_softmax(-1).numpy().astype(np.float32)


def test_beam_size_one_without_lm_is_greedy(tokenizer):
    decoder = BeamDecoder(tokenizer.pieces(), None, BeamConfig(beam_size=1, processes=1))
    log_probs = [random_log_probs(40, tokenizer.vocab_size, seed) for seed in range(8)]
    for array in log_probs:
        array[:, 1] = -30.0  # no <unk>: sentencepiece and pyctcdecode write it differently
    greedy = [
        tokenizer.decode(greedy_ctc_decode(torch.from_numpy(array)[None], torch.tensor([40]))[0])
        for array in log_probs
    ]
    assert decoder.decode(log_probs) == greedy
    assert any(greedy)  # the posteriors do spell something


def pieces_text(labels: list[int], pieces: list[str]) -> str:
    """Text of a collapsed label sequence, written independently of pyctcdecode."""
    return " ".join("".join(pieces[label] for label in labels).replace("▁", " ").split())


def brute_force_best(log_probs: np.ndarray, pieces: list[str]) -> tuple[str, str]:
    """(the text with the largest total probability over all its CTC paths, the best path's
    text), by enumerating every path; paths through <unk> (id 1) are left out."""
    totals: dict[str, float] = {}
    best_path, best_path_logp = "", -math.inf
    steps, vocab = log_probs.shape
    for path in itertools.product([0, *range(2, vocab)], repeat=steps):
        logp = float(sum(log_probs[step, label] for step, label in enumerate(path)))
        collapsed = [label for label, _ in itertools.groupby(path) if label != 0]
        text = pieces_text(collapsed, pieces)
        totals[text] = totals.get(text, 0.0) + math.exp(logp)
        if logp > best_path_logp:
            best_path, best_path_logp = text, logp
    return max(totals, key=totals.__getitem__), best_path


def test_wide_beam_finds_the_label_sequence_with_the_largest_path_sum():
    pieces = ["<blk>", "<unk>", "▁a", "▁b", "a"]
    decoder = BeamDecoder(pieces, None, EXHAUSTIVE)
    # Hand-made: blank is the best label at both steps (best path: nothing), yet the paths of
    # "a" (a a, a -, - a) add up to more: 0.4·0.4 + 2 · 0.4·0.55 = 0.6 > 0.55² = 0.3.
    hand = np.log(np.array([[0.55, 1e-9, 0.4, 0.03, 0.02]] * 2, dtype=np.float64))
    cases = [hand] + [random_log_probs(5, len(pieces), seed, 1.0) for seed in range(6)]
    found_difference = False
    for log_probs in cases:
        log_probs[:, 1] = -50.0
        best_text, best_path_text = brute_force_best(log_probs, pieces)
        found_difference |= best_text != best_path_text
        assert decoder.decode([log_probs.astype(np.float32)]) == [best_text]
    assert found_difference  # the sum over paths, not the best path, decided somewhere


def test_lone_word_starts_leave_single_spaces():
    # "▁" alone, twice and at either end (a CTC model may emit it so): single spaces, none at
    # the ends, as Tokenizer.decode writes it.
    pieces = ["<blk>", "<unk>", "▁", "▁a", "b"]
    labels = [2, 3, 0, 2, 0, 2, 4, 2]
    log_probs = np.log(np.where(np.eye(len(pieces))[labels] > 0, 0.96, 0.01)).astype(np.float32)
    decoder = BeamDecoder(pieces, None, BeamConfig(processes=1))
    assert decoder.decode([log_probs]) == [pieces_text([2, 3, 2, 2, 4, 2], pieces)] == ["a b"]


def spell(text: str, pieces: list[str], confusions: dict[int, dict[str, float]]) -> np.ndarray:
    """Posteriors that spell `text` letter by letter (a word starts with "▁"), one peaked step
    per label with a blank step after it; `confusions[i]` replaces the i-th letter's step."""
    labels = []
    for word in text.split():
        labels += ["▁", *word]
    rows = []
    for index, label in enumerate(labels):
        probs = dict(confusions.get(index, {label: 0.9}))
        row = np.full(len(pieces), 1e-4)
        for name, prob in probs.items():
            row[pieces.index(name)] = prob
        rows.append(row)
        blank = np.full(len(pieces), 1e-4)
        blank[0] = 0.95
        rows.append(blank)
    array = np.array(rows)
    return np.log(array / array.sum(axis=1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def letters_lm(tmp_path_factory):
    directory = tmp_path_factory.mktemp("lm") / "lm"
    build_lm(TEXTS * 3, directory, order=3)
    return load_lm(directory)


def test_lm_prefers_a_known_word_only_when_weighted(letters_lm):
    # "the cax": the acoustics favour the unseen "cax" over "cat" (x 0.55, t 0.40).
    log_probs = spell("the cax", LETTER_PIECES, {7: {"x": 0.55, "t": 0.40}})
    open_search = BeamConfig(lm_weight=0.0, processes=1, lexicon=False)
    acoustic = BeamDecoder(LETTER_PIECES, letters_lm, open_search)
    assert acoustic.search == "open"
    assert acoustic.decode([log_probs]) == ["the cax"]
    weighted = BeamDecoder(LETTER_PIECES, letters_lm, replace(open_search, lm_weight=1.0))
    assert weighted.decode([log_probs]) == ["the cat"]


def test_lexicon_search_spells_only_lm_words(letters_lm):
    # The same "the cax": over the LM's words, "cat" is the closest even with no LM weight.
    log_probs = spell("the cax", LETTER_PIECES, {7: {"x": 0.55, "t": 0.40}})
    decoder = BeamDecoder(LETTER_PIECES, letters_lm, BeamConfig(lm_weight=0.0, processes=1))
    assert decoder.search == "lexicon"
    assert decoder.decode([log_probs]) == ["the cat"]


@pytest.fixture(scope="module")
def ab_lm(tmp_path_factory):
    directory = tmp_path_factory.mktemp("ablm") / "lm"
    build_lm(["a b", "ab ba", "a ab", "ba b a", "b ab ba"], directory, order=2)
    return load_lm(directory)


AB_PIECES = ["<blk>", "<unk>", "▁a", "▁b", "a", "b"]


def lexicon_brute_force(
    log_probs: np.ndarray, words: set[str], lm, lm_weight: float, word_score: float
) -> tuple[dict[str, float], dict[str, float]]:
    """Every text made of `words` that some CTC path spells, with its scores: the log of the
    sum over its paths and the log-probability of its best path, each plus lm_weight · ln P_lm
    (KenLM, sentence ends included) and word_score per word. Paths that hold a word's last
    piece for more than one step are left out, as flashlight's search leaves them out."""
    totals: dict[str, float] = {}
    best_paths: dict[str, float] = {}
    steps, vocab = log_probs.shape
    for path in itertools.product([0, *range(2, vocab)], repeat=steps):
        runs = [(label, len(list(run))) for label, run in itertools.groupby(path) if label != 0]
        collapsed = [label for label, _ in runs]
        text = pieces_text(collapsed, AB_PIECES)
        if not text or not set(text.split()) <= words or AB_PIECES[collapsed[0]][0] != "▁":
            continue  # not LM words, spelled as the lexicon spells them
        # flashlight ends a word as its last piece arrives, and the piece cannot go on after
        # that (it was written for models that end words with a silence token).
        word_ends = [
            index + 1 == len(runs) or AB_PIECES[runs[index + 1][0]].startswith("▁")
            for index in range(len(runs))
        ]
        if any(end and length > 1 for end, (_, length) in zip(word_ends, runs)):
            continue
        logp = float(sum(log_probs[step, label] for step, label in enumerate(path)))
        totals[text] = totals.get(text, 0.0) + math.exp(logp)
        best_paths[text] = max(best_paths.get(text, -math.inf), logp)

    def linguistic(text: str) -> float:
        lm_log10 = lm.model.score(text, bos=True, eos=True)
        return lm_weight * math.log(10.0) * lm_log10 + word_score * len(text.split())

    sums = {text: math.log(total) + linguistic(text) for text, total in totals.items()}
    return sums, {text: logp + linguistic(text) for text, logp in best_paths.items()}


@pytest.mark.parametrize("lm_weight, word_score", [(0.0, 0.0), (0.7, 1.5)])
@pytest.mark.parametrize("log_add", [False, True])
def test_lexicon_search_finds_the_best_text_of_lm_words(ab_lm, lm_weight, word_score, log_add):
    # Viterbi (no log_add): the text of the best path over LM words, and exactly its score.
    # Summing, flashlight keeps a word's paths that end in a blank apart from those that end in
    # its last piece: its score sums part of its text's paths, between the best and all.
    from omnirouter.evaluate.lexicon_search import LexiconSearch, LexiconSettings

    words = set(ab_lm.unigrams)
    assert words == {"a", "b", "ab", "ba"}
    spellings = {"a": [2], "b": [3], "ab": [2, 5], "ba": [3, 4]}
    search = LexiconSearch(len(AB_PIECES), ab_lm, spellings)
    search.configure(LexiconSettings(1000, lm_weight, word_score, log_add=log_add))
    for seed in range(6):
        log_probs = random_log_probs(5, len(AB_PIECES), seed, 1.0)
        log_probs[:, 1] = -50.0
        sums, best_paths = lexicon_brute_force(
            log_probs.astype(np.float64), words, ab_lm, lm_weight, word_score
        )
        text, score = search.decode(log_probs)
        if log_add:
            assert best_paths[text] - 1e-4 <= score <= sums[text] + 1e-4
        else:
            assert text == max(best_paths, key=best_paths.__getitem__)
            assert score == pytest.approx(best_paths[text], abs=1e-4)


@pytest.mark.parametrize("lexicon", [True, False])
def test_pool_decodes_as_one_process_does(letters_lm, lexicon):
    log_probs = [
        spell(text, LETTER_PIECES, {}) for text in ["the cat sat", "a rat", "the mat", "on"]
    ]
    decoder = BeamDecoder(LETTER_PIECES, letters_lm, BeamConfig(processes=1, lexicon=lexicon))
    one = decoder.decode(log_probs, processes=1)
    assert (
        decoder.decode(log_probs, processes=2) == one == ["the cat sat", "a rat", "the mat", "on"]
    )
    assert decoder.stats.processes == {1, 2}


@pytest.mark.parametrize("lexicon", [True, False])
def test_an_empty_utterance_decodes_to_nothing(letters_lm, lexicon):
    empty = np.zeros((0, len(LETTER_PIECES)), dtype=np.float32)
    log_probs = [empty, spell("the cat", LETTER_PIECES, {}), empty]
    decoder = BeamDecoder(LETTER_PIECES, letters_lm, BeamConfig(processes=1, lexicon=lexicon))
    for processes in (1, 2):
        assert decoder.decode(log_probs, processes=processes) == ["", "the cat", ""]
