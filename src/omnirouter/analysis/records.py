"""Routing records: which expert every MoE layer chose for every valid step of every utterance.

Records are captured from the model's own output (`ModelOutput.routing`) while a set is
recognised, through the `on_output(batch, output)` hook of the recognition loop, so the
analysis needs no second pass. They hold everything the figures and statistics need, so that
an analysis can be redrawn from disk without the model:

    <name>.json   index: model name, family, MoE layers, router ids, experts, cut ids, ...
    <name>.npz    experts_LN (all utterances' steps concatenated), lookahead_LN, energy_N,
                  offsets_U, and mel_<k> for the few utterances whose spectrogram is shown

`lookahead_LN` is what an expert prefetcher could know one layer early: at MoE layer l, the
expert the next MoE layer's router picks for the hidden state leaving layer l's block
(`analysis.lookahead`); -1 at the last MoE layer and wherever it was not captured.

Energy is the mean log-mel level of a step: the mean over mel bins of each 10 ms frame,
averaged over the valid frames the model stacks into one step (4 × 10 ms = 40 ms, paper §V-C).
With per-utterance feature normalisation (the data pipeline's default) it is the level of the
normalised features: still high on loud frames and low on quiet ones, which is all the
per-utterance silence rule (`summary.silence_mask`) needs.

Shape legend: B batch, T frames (10 ms), S steps (after stacking), F mel bins, L MoE layers,
N steps of all utterances concatenated, U utterances.
"""

# Shape-suffixed field names (experts_LN) are the project's convention, as in model code.

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from omnirouter.data.batch import Batch
from omnirouter.model.config import Family
from omnirouter.model.ctc_model import ModelOutput
from omnirouter.model.frontend import stacked_lengths, valid_mask
from omnirouter.model.routing import RoutingInfo

DEFAULT_FRAME_SHIFT_SECONDS = 0.01  # 10 ms log-mel frame shift (paper §V-C)


@dataclass(frozen=True)
class RoutingRecords:
    """One model's routing over one set. Layers are MoE layers only, in depth order."""

    name: str  # model name shown in figures and tables
    family: Family  # switch or omni (or dense: then there are no layers)
    layers: tuple[int, ...]  # 0-based block index of each MoE layer
    router_ids: tuple[int, ...]  # router of each MoE layer; equal ids = one shared router
    num_experts: int
    stack_frames: int  # feature frames per step
    cut_ids: tuple[str, ...]  # utterances, in the order their steps are concatenated
    experts_LN: np.ndarray  # int16 expert chosen (first of top-k) per layer per step
    energy_N: np.ndarray  # float32 mean log-mel level per step
    offsets_U: np.ndarray  # int64, U + 1 entries: utterance u has steps offsets[u]:offsets[u+1]
    spectrograms: dict[str, np.ndarray] = field(default_factory=dict)  # cut id -> (T, F) log-mel
    frame_shift_seconds: float = DEFAULT_FRAME_SHIFT_SECONDS  # of the feature frames
    lookahead_LN: np.ndarray | None = None  # int16 next layer's router on this layer's output

    def lookahead(self) -> np.ndarray:
        """(L, N) lookahead predictions, -1 where none were captured."""
        if self.lookahead_LN is None:
            return np.full(self.experts_LN.shape, -1, dtype=np.int16)
        return self.lookahead_LN

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def num_steps(self) -> int:
        return int(self.experts_LN.shape[1])

    @property
    def step_seconds(self) -> float:
        return self.stack_frames * self.frame_shift_seconds

    @property
    def is_shared_router(self) -> bool:
        return len(set(self.router_ids)) <= 1

    def utterance_index(self, cut_id: str) -> int:
        try:
            return self.cut_ids.index(cut_id)
        except ValueError:
            raise KeyError(f"records of {self.name!r} hold no utterance {cut_id!r}") from None

    def utterance_experts(self, index: int) -> np.ndarray:
        """(L, S) experts of utterance `index`."""
        return self.experts_LN[:, self.offsets_U[index] : self.offsets_U[index + 1]]

    def utterance_energy(self, index: int) -> np.ndarray:
        return self.energy_N[self.offsets_U[index] : self.offsets_U[index + 1]]


def step_energy(
    features_BTF: torch.Tensor, feature_lens_B: torch.Tensor, stack_frames: int
) -> torch.Tensor:
    """(B, S) mean log-mel level of each step over its valid frames; 0 on padded steps."""
    batch, frames, _ = features_BTF.shape
    steps = math.ceil(frames / stack_frames)
    pad = steps * stack_frames - frames
    valid_BT = valid_mask(feature_lens_B, frames).to(features_BTF.dtype)
    level_BT = features_BTF.mean(dim=-1) * valid_BT
    level_BSK = torch.nn.functional.pad(level_BT, (0, pad)).view(batch, steps, stack_frames)
    count_BSK = torch.nn.functional.pad(valid_BT, (0, pad)).view(batch, steps, stack_frames)
    return level_BSK.sum(-1) / count_BSK.sum(-1).clamp(min=1)


class RoutingCollector:
    """The `on_output(batch, output)` hook of recognition: keeps each utterance's routing.

    Keeps the log-mel spectrogram only of `shown_cut_ids` (the few drawn in Fig. 2).
    """

    def __init__(
        self,
        stack_frames: int,
        shown_cut_ids: Iterable[str] = (),
        frame_shift_seconds: float = DEFAULT_FRAME_SHIFT_SECONDS,
    ) -> None:
        self.stack_frames = stack_frames
        self.frame_shift_seconds = frame_shift_seconds
        self.shown_cut_ids = frozenset(shown_cut_ids)
        self._experts: list[np.ndarray] = []
        self._lookahead: list[np.ndarray] = []
        self._energy: list[np.ndarray] = []
        self._cut_ids: list[str] = []
        self._spectrograms: dict[str, np.ndarray] = {}
        self._layers: tuple[int, ...] | None = None
        self._router_ids: tuple[int, ...] = ()
        self._num_experts = 0

    def __call__(self, batch: Batch, output: ModelOutput) -> None:
        layers = tuple(info.layer for info in output.routing)
        if self._layers is None:
            self._layers = layers
            self._router_ids = tuple(info.router_id for info in output.routing)
            self._num_experts = output.routing[0].num_experts if output.routing else 0
        elif layers != self._layers:
            raise ValueError(f"MoE layers changed between batches: {self._layers} → {layers}")
        lengths_B = output.lengths_B.cpu()
        expected_B = stacked_lengths(batch.feature_lens_B.cpu(), self.stack_frames)
        if not torch.equal(lengths_B, expected_B):
            raise ValueError(
                f"model output lengths {lengths_B.tolist()} are not the feature lengths stacked "
                f"by {self.stack_frames} ({expected_B.tolist()}): wrong stack_frames?"
            )
        energy_BS = step_energy(batch.features_BTF, batch.feature_lens_B, self.stack_frames).cpu()
        experts_LBS = (
            torch.stack([info.experts_BT() for info in output.routing]).cpu()
            if output.routing
            else torch.empty(0, *energy_BS.shape, dtype=torch.long)
        )
        lookahead_LBS = (
            torch.stack([_lookahead_BT(info) for info in output.routing]).cpu()
            if output.routing
            else torch.empty(0, *energy_BS.shape, dtype=torch.long)
        )
        for index, cut_id in enumerate(batch.cut_ids):
            steps = int(lengths_B[index])
            self._cut_ids.append(cut_id)
            self._experts.append(experts_LBS[:, index, :steps].numpy().astype(np.int16))
            self._lookahead.append(lookahead_LBS[:, index, :steps].numpy().astype(np.int16))
            self._energy.append(energy_BS[index, :steps].numpy().astype(np.float32))
            if cut_id in self.shown_cut_ids:
                frames = int(batch.feature_lens_B[index])
                spectrogram_TF = batch.features_BTF[index, :frames].detach().cpu().float()
                self._spectrograms[cut_id] = spectrogram_TF.numpy()

    def records(self, name: str, family: Family) -> RoutingRecords:
        """Everything collected so far, as records of model `name`."""
        layers = self._layers or ()
        lengths = [energy.shape[0] for energy in self._energy]
        experts_LN = (
            np.concatenate(self._experts, axis=1)
            if self._experts
            else np.zeros((len(layers), 0), dtype=np.int16)
        )
        lookahead_LN = (
            np.concatenate(self._lookahead, axis=1)
            if self._lookahead
            else np.zeros((len(layers), 0), dtype=np.int16)
        )
        return RoutingRecords(
            name=name,
            family=family,
            layers=layers,
            router_ids=self._router_ids,
            num_experts=self._num_experts,
            stack_frames=self.stack_frames,
            cut_ids=tuple(self._cut_ids),
            experts_LN=experts_LN,
            energy_N=np.concatenate(self._energy) if self._energy else np.zeros(0, np.float32),
            offsets_U=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
            spectrograms=dict(self._spectrograms),
            frame_shift_seconds=self.frame_shift_seconds,
            lookahead_LN=lookahead_LN,
        )


def _lookahead_BT(info: RoutingInfo) -> torch.Tensor:
    """A layer's lookahead predictions as a (B, T) map; -1 on padding and when not captured."""
    if info.lookahead_N is None:
        return torch.full(info.valid_BT.shape, -1, dtype=torch.long, device=info.valid_BT.device)
    return info.frame_map(info.lookahead_N)


def save_records(records: RoutingRecords, directory: str | Path, stem: str) -> Path:
    """Write `<stem>.json` (index) and `<stem>.npz` (arrays); returns the JSON path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    shown = sorted(records.spectrograms)
    index = {
        "name": records.name,
        "family": records.family,
        "layers": list(records.layers),
        "router_ids": list(records.router_ids),
        "num_experts": records.num_experts,
        "stack_frames": records.stack_frames,
        "frame_shift_seconds": records.frame_shift_seconds,
        "cut_ids": list(records.cut_ids),
        "shown_cut_ids": shown,
        "arrays": f"{stem}.npz",
    }
    arrays = {
        f"mel_{position}": records.spectrograms[cut_id] for position, cut_id in enumerate(shown)
    }
    np.savez_compressed(
        directory / f"{stem}.npz",
        experts_LN=records.experts_LN,
        lookahead_LN=records.lookahead(),
        energy_N=records.energy_N,
        offsets_U=records.offsets_U,
        **arrays,
    )
    path = directory / f"{stem}.json"
    path.write_text(json.dumps(index, indent=1) + "\n")
    return path


def load_records(index_path: str | Path) -> RoutingRecords:
    """Records written by `save_records`, from their JSON index path."""
    index_path = Path(index_path)
    try:
        index = json.loads(index_path.read_text())
        with np.load(index_path.parent / index["arrays"]) as arrays:
            loaded = {key: arrays[key] for key in arrays.files}
        spectrograms = {
            cut_id: loaded[f"mel_{position}"]
            for position, cut_id in enumerate(index["shown_cut_ids"])
        }
        records = RoutingRecords(
            name=index["name"],
            family=Family(index["family"]),
            layers=tuple(index["layers"]),
            router_ids=tuple(index["router_ids"]),
            num_experts=int(index["num_experts"]),
            stack_frames=int(index["stack_frames"]),
            cut_ids=tuple(index["cut_ids"]),
            experts_LN=loaded["experts_LN"],
            energy_N=loaded["energy_N"],
            offsets_U=loaded["offsets_U"],
            spectrograms=spectrograms,
            frame_shift_seconds=float(index["frame_shift_seconds"]),
            lookahead_LN=loaded.get("lookahead_LN"),  # absent from records of older versions
        )
    except (OSError, KeyError, ValueError) as error:
        raise ValueError(f"{index_path}: not readable routing records ({error})") from error
    if records.offsets_U[-1] != records.num_steps or records.energy_N.shape[0] != records.num_steps:
        raise ValueError(f"{index_path}: offsets, energy and experts disagree on the step count")
    return records
