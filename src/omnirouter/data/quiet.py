"""Where audio is quietest: the place to cut a recording, or to insert a pause, without
splitting a word. Numpy only, so that the corpus builder's workers can use it.

Shape legend: S samples.
"""

from __future__ import annotations

import numpy as np


def quietest_point(samples_S: np.ndarray, start: int, stop: int, frame: int) -> int:
    """The centre of the lowest-energy `frame`-sample frame of `samples_S[start:stop]`.

    The span is divided into whole frames from `start` (a partial frame at the end is not
    considered); a span shorter than one frame gives its own centre.
    """
    start, stop = max(0, start), min(len(samples_S), stop)
    num_frames = (stop - start) // frame if frame > 0 else 0
    if num_frames < 1:
        return (start + stop) // 2
    window = samples_S[start : start + num_frames * frame].astype(np.float64)
    energy = np.square(window.reshape(num_frames, frame)).sum(axis=1)
    return start + int(np.argmin(energy)) * frame + frame // 2
