import itertools

import torch

from omnirouter.evaluate.decode import greedy_ctc_decode

BLANK = 0


def posteriors(paths: list[list[int]], vocab_size: int = 6, total_steps: int | None = None):
    """Log-probs whose argmax follows each path; steps past a path are padding whose argmax is
    a non-blank label, so decoding them would show up as extra tokens."""
    steps = total_steps or max(len(path) for path in paths)
    log_probs = torch.full((len(paths), steps, vocab_size), -10.0)
    log_probs[:, :, 3] = -0.1  # padding argmax: label 3
    for row, path in enumerate(paths):
        for step, label in enumerate(path):
            log_probs[row, step, :] = -10.0
            log_probs[row, step, label] = -0.1
    lengths = torch.tensor([len(path) for path in paths])
    return log_probs.log_softmax(-1), lengths


def reference_collapse(path: list[int]) -> list[int]:
    """The CTC collapsing function written independently: merge runs, then drop blanks."""
    return [label for label, _ in itertools.groupby(path) if label != BLANK]


def test_repeats_merge_and_blanks_separate():
    log_probs, lengths = posteriors([[1, 1, 2, 2, 2, 0, 2, 0, 0, 1]])
    assert greedy_ctc_decode(log_probs, lengths) == [[1, 2, 2, 1]]


def test_all_blank_and_empty_utterances_decode_to_nothing():
    log_probs, lengths = posteriors([[0, 0, 0], []], total_steps=3)
    assert greedy_ctc_decode(log_probs, lengths) == [[], []]


def test_padding_is_never_decoded():
    # The last valid label equals the padding label: merging across the end would hide a bug,
    # decoding padding would add tokens.
    log_probs, lengths = posteriors([[1, 3], [2, 0, 1, 1, 4, 4, 0]], total_steps=9)
    assert greedy_ctc_decode(log_probs, lengths) == [[1, 3], [2, 1, 4]]


def test_matches_the_collapsing_function_on_random_paths():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        paths = []
        for _ in range(4):
            length = int(torch.randint(0, 12, (1,), generator=generator))
            paths.append(torch.randint(0, 4, (length,), generator=generator).tolist())
        log_probs, lengths = posteriors(paths, total_steps=12)
        assert greedy_ctc_decode(log_probs, lengths) == [reference_collapse(p) for p in paths]


def test_zero_steps():
    assert greedy_ctc_decode(torch.zeros(2, 0, 5), torch.zeros(2, dtype=torch.long)) == [[], []]
