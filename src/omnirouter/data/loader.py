"""Loaders: manifests -> duration-bucketed batches -> `Batch`, for training and for evaluation.

Training: Lhotse's `DynamicBucketingSampler` (seeded, DDP-aware) picks which utterances form a
batch, in the main process; `AsrDataset` turns them into tensors in worker processes. The loader
counts the batches it has *delivered*, so `state_dict()` after any batch resumes exactly there:
the sampler is replayed (manifests only, no audio) up to that batch, and since augmentation is
seeded per utterance, the remaining batches are identical, tensors included.

With `data.shar_dir` the sets are read from a Shar export (`omnirouter.data.shar`) instead of
the corpus's manifests: the same cuts, with their features or audio carried along in memory
(so a replay reads the shards' bytes too, without decoding them).

Utterances that cannot be used are skipped and counted in `TrainLoader.skipped` by reason:
manifest-level problems (duration, transcript, speech rate) when the sampler reads them, audio
problems when their batch is delivered. The first few of each reason are logged with the file.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import asdict
from itertools import islice
from pathlib import Path
from typing import Any

import torch
from lhotse import CutSet
from lhotse.cut import Cut
from lhotse.dataset import DynamicBucketingSampler
from lhotse.dataset.sampling.base import TimeConstraint
from lhotse.dataset.sampling.dynamic_bucketing import estimate_duration_buckets

from omnirouter.data.batch import Batch
from omnirouter.data.config import DataConfig
from omnirouter.data.corpus import CorpusInfo, read_corpus_info
from omnirouter.data.dataset import AsrDataset, BatchRequest, LoadedBatch
from omnirouter.data.features import check_stored_settings, stored_feature_records
from omnirouter.data.filters import SkipReason, UtteranceLimits, utterance_problem
from omnirouter.data.manifests import cut_text, read_manifest, read_set_cuts
from omnirouter.data.shar import read_shar, read_shar_info, set_shard_epoch
from omnirouter.data.tokenizer import Tokenizer

log = logging.getLogger(__name__)

LOGGED_SKIPS_PER_REASON = 10
STATE_VERSION = 1


def pack_by_duration(cuts: Iterable[Cut], max_duration: float) -> Iterator[list[Cut]]:
    """Consecutive groups whose padded size (count × longest) stays within max_duration.

    A single utterance longer than max_duration forms a group of its own.
    """
    group: list[Cut] = []
    longest = 0.0
    for cut in cuts:
        if group and (len(group) + 1) * max(longest, cut.duration) > max_duration:
            yield group
            group, longest = [], 0.0
        group.append(cut)
        longest = max(longest, cut.duration)
    if group:
        yield group


def duration_bins(cuts: CutSet, config: DataConfig) -> list[float]:
    """Bucket boundaries from the first utterances, as Lhotse places them, with the number of
    buckets capped by the utterances available (Lhotse would fail on a tiny corpus)."""
    sample = list(islice(cuts, config.num_cuts_for_bins_estimate))
    if len(sample) < 2:
        raise ValueError(f"{config.corpus_dir}: the training sets hold fewer than 2 utterances")
    num_buckets = max(2, min(config.num_buckets, len(sample)))
    constraint = TimeConstraint(
        max_duration=config.max_duration, quadratic_duration=config.quadratic_duration
    )
    return estimate_duration_buckets(sample, num_buckets=num_buckets, constraint=constraint)


class _FittingBucketingSampler(DynamicBucketingSampler):
    """Lhotse's sampler can overshoot max_duration when a long utterance joins short ones; such
    a batch is split here, before batches are dealt to DDP ranks, so every rank still gets the
    same number of batches."""

    def __iter__(self) -> _FittingBucketingSampler:
        self._pending: deque[CutSet] = deque()
        return super().__iter__()  # type: ignore[return-value]

    def _next_batch(self) -> CutSet:
        if not self._pending:
            batch = super()._next_batch()
            groups = pack_by_duration(batch, self.max_duration)  # type: ignore[arg-type]
            self._pending.extend(CutSet.from_cuts(group) for group in groups)
        return self._pending.popleft()


class _CountingFilter:
    """The sampler's predicate: drops unusable utterances and counts each one once.

    The input stream's order is fixed within an epoch (manifest order, or a Shar export's
    shard order drawn from seed and epoch; the rest of the shuffling happens later, in the
    sampler), so a position in it identifies an utterance; after a resume, positions already
    counted before the checkpoint are not counted again.
    """

    def __init__(self, limits: UtteranceLimits, tokenizer: Tokenizer, loader: TrainLoader) -> None:
        self.limits = limits
        self.tokenizer = tokenizer
        self.loader = loader
        self.position = 0
        self.counted_until = 0

    def start_epoch(self, counted_until: int) -> None:
        self.position = 0
        self.counted_until = counted_until

    def __call__(self, cut: Cut) -> bool:
        problem = utterance_problem(cut, self.limits, self.tokenizer)
        if problem is not None and self.position >= self.counted_until:
            detail = f"{cut.duration:.2f} s, text {cut_text(cut)[:60]!r}"
            self.loader.count_skip(cut.id, problem, detail)
        self.position += 1
        return problem is None


def _train_requests(
    sampler: DynamicBucketingSampler, epoch: int, skip: int
) -> Iterator[BatchRequest]:
    """The sampler's batches as `BatchRequest`s, after replaying the first `skip` of them."""
    for index, cuts in enumerate(sampler):
        if index >= skip:
            yield BatchRequest(cuts=cuts, epoch=epoch, index=index)


class TrainLoader:
    """Iterable of training `Batch`es, one epoch per iteration; resumable mid-epoch.

    `set_epoch(e)` selects the epoch (the shuffle depends on seed and epoch); a completed
    iteration moves on to the next epoch by itself.
    """

    def __init__(
        self, config: DataConfig, tokenizer: Tokenizer, seed: int, rank: int, world_size: int
    ) -> None:
        self.config = config
        self.seed = seed
        self.rank = rank
        self.world_size = world_size
        self.epoch = 0
        self.skipped: dict[str, int] = {}
        self._logged: dict[str, set[str]] = {}  # by reason, the utterances whose skip was logged
        self._next_index = 0  # batches of this epoch already delivered
        self._counted_until = 0  # stream positions of this epoch whose skips are counted
        self._filter = _CountingFilter(config.limits, tokenizer, self)
        self.cuts = train_cuts(config, shuffle_seed=seed)
        self.sampler = _FittingBucketingSampler(
            self.cuts,
            max_duration=config.max_duration,
            duration_bins=duration_bins(train_cuts(config, with_data=False), config),
            shuffle=True,
            drop_last=False,
            buffer_size=config.shuffle_buffer,
            quadratic_duration=config.quadratic_duration,
            world_size=world_size,
            rank=rank,
            seed=seed,
        )
        self.sampler.filter(self._filter)
        self.dataset = AsrDataset(
            tokenizer, config.features, config.spec_augment, seed=seed, training=True
        )

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self.epoch = epoch
            self._next_index = 0
            self._counted_until = 0

    def __iter__(self) -> Iterator[Batch]:
        set_shard_epoch(self.cuts, self.epoch)
        self.sampler.set_epoch(self.epoch)
        self._filter.start_epoch(self._counted_until)
        requests = _train_requests(self.sampler, self.epoch, skip=self._next_index)
        for loaded in _data_loader(self.dataset, requests, self.config.num_workers):
            self._next_index = loaded.index + 1
            self._counted_until = max(self._counted_until, self._filter.position)
            for skipped in loaded.skipped:
                self.count_skip(skipped.cut_id, skipped.reason, str(skipped.error))
            if loaded.batch is not None:
                yield loaded.batch
        self.set_epoch(self.epoch + 1)

    def count_skip(self, cut_id: str, reason: SkipReason, detail: str) -> None:
        """Count a skip (in every epoch it happens); log an utterance's skip once per run, and
        the first few utterances of each reason only."""
        self.skipped[reason.value] = self.skipped.get(reason.value, 0) + 1
        logged = self._logged.setdefault(reason.value, set())
        if cut_id in logged or len(logged) >= LOGGED_SKIPS_PER_REASON:
            return
        logged.add(cut_id)
        log.warning("skipping utterance %s: %s (%s)", cut_id, reason.value, detail)
        if len(logged) == LOGGED_SKIPS_PER_REASON:
            log.warning(
                "further %r skips are counted in TrainLoader.skipped, not logged", reason.value
            )

    def state_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "epoch": self.epoch,
            "next_batch_index": self._next_index,
            "counted_until": max(self._counted_until, self._filter.position),
            "skipped": dict(self.skipped),
            "sampling": self._sampling_settings(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue from a `state_dict()`: the next batch is the one after the saved position.

        The data settings that shape batches (sets, seed, world size, batch duration ...) must be
        unchanged, or the replay would not land on the same batch; a difference is an error.
        """
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"loader state version {state.get('version')} != {STATE_VERSION}")
        saved, current = state["sampling"], self._sampling_settings()
        changed = [key for key in current if saved.get(key) != current[key]]
        if changed:
            details = ", ".join(f"{key}: {saved.get(key)!r} -> {current[key]!r}" for key in changed)
            raise ValueError(f"cannot resume the training loader exactly; changed {details}")
        self.epoch = int(state["epoch"])
        self._next_index = int(state["next_batch_index"])
        self._counted_until = int(state["counted_until"])
        self.skipped = dict(state["skipped"])

    def _sampling_settings(self) -> dict[str, Any]:
        config = self.config
        return {
            "corpus_dir": str(Path(config.corpus_dir).resolve()),
            "shar_dir": str(Path(config.shar_dir).resolve()) if config.shar_dir else None,
            "train_sets": list(config.train_sets),
            "max_duration": config.max_duration,
            "num_buckets": config.num_buckets,
            "shuffle_buffer": config.shuffle_buffer,
            "num_cuts_for_bins_estimate": config.num_cuts_for_bins_estimate,
            "quadratic_duration": config.quadratic_duration,
            "limits": asdict(config.limits),
            "seed": self.seed,
            "world_size": self.world_size,
            "rank": self.rank,
        }


class EvalLoader:
    """Every utterance exactly once, in manifest order, in batches of at most max_duration
    (padded size); no augmentation; bad audio is an error naming the file."""

    def __init__(
        self, cuts: CutSet, dataset: AsrDataset, max_duration: float, workers: int
    ) -> None:
        self.cuts = cuts
        self.dataset = dataset
        self.max_duration = max_duration
        self.num_workers = workers

    def num_batches(self) -> int:
        """How many batches an iteration yields (for a progress bar's total); reads the
        manifest, not the audio."""
        return sum(1 for _ in pack_by_duration(self.cuts, self.max_duration))

    def __iter__(self) -> Iterator[Batch]:
        requests = (
            BatchRequest(cuts=CutSet.from_cuts(group), epoch=0, index=index)
            for index, group in enumerate(pack_by_duration(self.cuts, self.max_duration))
        )
        for loaded in _data_loader(self.dataset, requests, self.num_workers):
            if loaded.skipped:  # every utterance of a test set counts: no skipping here
                raise loaded.skipped[0].error
            assert loaded.batch is not None
            yield loaded.batch


def build_train_loader(
    config: DataConfig, tokenizer: Tokenizer, *, seed: int, rank: int = 0, world_size: int = 1
) -> TrainLoader:
    """The training loader of this DDP rank; see `TrainLoader`."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside [0, world_size={world_size})")
    return TrainLoader(config, tokenizer, seed=seed, rank=rank, world_size=world_size)


def build_eval_loader(
    config: DataConfig, cuts: CutSet | str | Path, tokenizer: Tokenizer
) -> EvalLoader:
    """An evaluation loader over a CutSet, a manifest file, or a set name of the corpus (of
    its Shar export when config.shar_dir is set)."""
    if not isinstance(cuts, CutSet):
        path = Path(cuts)
        cuts = read_manifest(path) if path.is_file() else eval_cuts(config, str(cuts))
    dataset = AsrDataset(tokenizer, config.features, config.spec_augment, seed=0, training=False)
    return EvalLoader(cuts, dataset, config.max_duration, config.num_workers)


def eval_cuts(config: DataConfig, set_name: str) -> CutSet:
    """The cuts of one set of the corpus (read lazily); UnknownNameError (a KeyError) lists the
    corpus's sets."""
    info = _corpus_info(config, [set_name])
    _check_stored_features(config, info, [set_name])
    return _read_sets(config, [set_name])


def evaluation_set_names(config: DataConfig) -> list[str]:
    """config.test_sets, or every set of role "test" when it is empty."""
    info = _corpus_info(config, config.test_sets)
    return list(config.test_sets) or info.set_names(role="test")


def train_cuts(
    config: DataConfig, shuffle_seed: int | None = None, with_data: bool = True
) -> CutSet:
    """The training sets, read lazily one after another in a fixed order.

    From a Shar export: with `shuffle_seed`, its shards in an order drawn from the seed and
    the epoch; with_data=False, its manifests only (all the sampler needs to place buckets).
    """
    info = _corpus_info(config, config.train_sets)
    _check_stored_features(config, info, config.train_sets)
    return _read_sets(config, config.train_sets, shuffle_seed, with_data)


def _corpus_info(config: DataConfig, set_names: Sequence[str]) -> CorpusInfo:
    """corpus.json of the corpus, or of its Shar export; UnknownNameError if a set is not
    listed."""
    if config.shar_dir is not None:
        return read_shar_info(config.shar_dir, set_names)
    info = read_corpus_info(config.corpus_dir)
    for name in set_names:
        info.set(name)
    return info


def _check_stored_features(config: DataConfig, info: CorpusInfo, set_names: Sequence[str]) -> None:
    """With `features.use_stored`, refuse sets whose stored features the corpus records as made
    with other analysis settings (before a single batch is read, not at the first utterance)."""
    if not config.features.use_stored:
        return
    recorded = stored_feature_records(info.extra)
    for name in set_names:
        if name in recorded:
            check_stored_settings(recorded[name], config.features, f"set {name!r}")


def _read_sets(
    config: DataConfig,
    set_names: Sequence[str],
    shuffle_seed: int | None = None,
    with_data: bool = True,
) -> CutSet:
    if config.shar_dir is not None:
        return read_shar(
            config.shar_dir,
            set_names,
            with_data=with_data,
            audio_required=with_data and not config.features.use_stored,
            shuffle_seed=shuffle_seed,
        )
    return read_set_cuts(config.corpus_dir, set_names)


class _Once(torch.utils.data.Sampler):
    """A DataLoader "sampler" handing out one pass of requests (made in the main process)."""

    def __init__(self, requests: Iterator[BatchRequest]) -> None:
        self.requests = requests

    def __iter__(self) -> Iterator[BatchRequest]:
        return self.requests


def _data_loader(
    dataset: AsrDataset, requests: Iterator[BatchRequest], num_workers: int
) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(
        dataset,
        sampler=_Once(requests),
        batch_size=None,
        num_workers=num_workers,
        collate_fn=_as_is,
        persistent_workers=False,
        # Its own generator: starting an iterator must not draw from the global RNG, or a
        # resumed run's dropout masks would differ from the uninterrupted run's.
        generator=torch.Generator().manual_seed(0),
    )


def _as_is(loaded: LoadedBatch) -> LoadedBatch:
    return loaded
