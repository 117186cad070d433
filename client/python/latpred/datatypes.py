"""Plain, typed results of the latpred client (no protobuf objects leak out)."""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Sequence, Union, overload

__all__ = [
    "ModelState",
    "FeatureSource",
    "Feature",
    "FitStats",
    "SpaceState",
    "Device",
    "RegisterResult",
    "Sample",
    "SampleResult",
    "SubmitResult",
    "AdaptResult",
    "Prediction",
    "ServerInfo",
]

#: An architecture in any spelling the client accepts (see :mod:`latpred.archs`).
ArchLike = Union[str, int, Sequence[Union[str, int]]]


class ModelState(str, enum.Enum):
    """What a device's predictions for one space come from (``latpred.v1.ModelState``)."""

    UNSPECIFIED = "unspecified"
    #: Nothing to predict with: no samples adapted and no descriptor.
    NONE = "none"
    #: From the base model's prior and the device's descriptor alone.
    ZERO_SHOT = "zero_shot"
    #: Adapted from the device's own samples.
    ADAPTED = "adapted"
    #: A bundled source device the base model was trained on.
    SOURCE = "source"

    def __str__(self) -> str:
        return self.value


class FeatureSource(str, enum.Enum):
    """Where a descriptor feature comes from (``latpred.v1.FeatureSource``)."""

    UNSPECIFIED = "unspecified"
    COUNTER = "counter"
    MICROBENCHMARK = "microbenchmark"
    #: The measured latency of a reference architecture; the name is "<space>:<arch>".
    REFERENCE_LATENCY = "reference_latency"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class Feature:
    """One descriptor feature of a device."""

    name: str
    value: float
    source: FeatureSource = FeatureSource.UNSPECIFIED
    unit: str = ""

    @classmethod
    def reference(cls, space: str, arch: ArchLike, latency_ms: float) -> "Feature":
        """The measured latency of a reference architecture, in any accepted spelling.

        >>> Feature.reference("nb201", 0, 9.0).name[:7]
        'nb201:|'
        """
        from .archs import normalize_arch  # late import: archs imports this module

        return cls(
            name=f"{space}:{normalize_arch(space, arch)}",
            value=float(latency_ms),
            source=FeatureSource.REFERENCE_LATENCY,
            unit="ms",
        )


@dataclass(frozen=True)
class FitStats:
    """How well an adapted model fits the device's samples."""

    samples: int
    #: Rank correlation and mean absolute percentage error on the samples themselves.
    fit_spearman: float
    fit_mape: float
    #: Mean absolute percentage error in leave-one-out cross-validation.
    loo_mape: float
    seconds: float
    #: Samples left out of the fit as likely measurement glitches (architecture
    #: strings): measure them again.
    set_aside: tuple[str, ...] = ()
    #: Robust spread of the leave-one-out log errors (1.4826 times their median absolute
    #: value): the scale of ``Client.predict_interval``. 0 below 3 samples.
    loo_log_sd: float = 0.0
    #: The share of the head that comes from the device's descriptor
    #: (docs/descriptor.md): 0 where it has none or it says nothing; 1 for a zero-shot
    #: head from the descriptor alone.
    descriptor_weight: float = 0.0


@dataclass(frozen=True)
class SpaceState:
    """A device's samples and model in one search space."""

    space: str
    sample_count: int
    state: ModelState
    model_version: int
    #: Set for adapted models only.
    fit: Optional[FitStats] = None


@dataclass(frozen=True)
class Device:
    """A measurement target: labels, descriptor and per-space state."""

    name: str
    labels: Dict[str, str] = field(default_factory=dict)
    features: List[Feature] = field(default_factory=list)
    #: True for the bundled devices the base models were trained on.
    source: bool = False
    #: By space name; a space the device has neither samples nor a model for is absent.
    spaces: Dict[str, SpaceState] = field(default_factory=dict)
    created_unix_ms: int = 0
    updated_unix_ms: int = 0

    def state(self, space: str) -> ModelState:
        """The model state for ``space`` (NONE when the device has nothing there)."""
        entry = self.spaces.get(space)
        return entry.state if entry is not None else ModelState.NONE

    def sample_count(self, space: str) -> int:
        entry = self.spaces.get(space)
        return entry.sample_count if entry is not None else 0


@dataclass(frozen=True)
class RegisterResult:
    device: Device
    #: False when the device existed and only its labels and descriptor were replaced.
    created: bool


@dataclass(frozen=True)
class Sample:
    """One measured latency to submit; ``arch`` in any accepted spelling."""

    arch: ArchLike
    latency_ms: float
    #: How many timed runs the median came from, and their spread (ms); optional.
    repeats: int = 0
    spread_ms: float = 0.0


@dataclass(frozen=True)
class SampleResult:
    """What the server did with one submitted sample (index: position in your list)."""

    index: int
    accepted: bool
    canonical_arch: str
    error: str


@dataclass(frozen=True)
class SubmitResult:
    accepted: int
    rejected: int
    #: Samples stored for the device and space after the call.
    sample_count: int
    results: List[SampleResult] = field(default_factory=list)
    #: True when the server had already stored this batch (its request_id) and stored
    #: nothing this time: accepted, rejected and results are the first call's. For a
    #: batch sent in chunks, when every chunk had been stored.
    replayed: bool = False


@dataclass(frozen=True)
class AdaptResult:
    model_version: int
    state: ModelState
    fit: Optional[FitStats]
    #: True when ``wait=False``: the fit runs in the background, the rest is unset.
    pending: bool


@dataclass(frozen=True)
class Prediction(Sequence[float]):
    """Predicted latencies (ms), in input order, and what they come from.

    Behaves as a sequence of floats, so ``list(prediction)`` gives the latencies.
    All latencies of one ``Client.predict`` call come from one model version.
    """

    latency_ms: List[float]
    model_version: int
    #: True when the device has no adapted model: descriptor and prior alone.
    zero_shot: bool
    state: ModelState
    #: With ``predict(..., interval=share)``: the bounds per architecture that hold that
    #: share of latencies. Empty when no interval was asked for or the model has none
    #: (zero-shot, a source device, fewer than 3 samples).
    lower_ms: List[float] = field(default_factory=list)
    upper_ms: List[float] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.latency_ms)

    def __iter__(self) -> Iterator[float]:
        return iter(self.latency_ms)

    @overload
    def __getitem__(self, index: int) -> float: ...

    @overload
    def __getitem__(self, index: slice) -> List[float]: ...

    def __getitem__(self, index: Union[int, slice]) -> Union[float, List[float]]:
        return self.latency_ms[index]


@dataclass(frozen=True)
class ServerInfo:
    version: str
    spaces: List[str]
    #: Largest PredictLatency / SubmitSamples batch the server accepts.
    max_batch: int
    ready: bool
