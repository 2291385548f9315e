"""What the steps of one user-level run share: the options, the running stack, the inputs, the
PyTorch models loaded so far, what has been measured, and the per-request times the budget
estimates later steps from."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from perf.budget import SkipStep
from perf.measure import FactoryBuilder, TritonWatch, measure
from perf.photos import GroupPhoto, Upload, group_photo, upscale_uploads
from perf.realistic_options import RealisticOptions
from perf.realistic_results import CaseCost, CaseRun, FloorRun, LeakCheck
from perf.realistic_stack import Stack
from perf.servers import Gateway

Key = tuple[str, str, int, str]  # scenario, model, side, path
MIN_SCORE = 0.9  # /restore's default face_detector_score
WEIGHT = 0.5  # /restore's default weight


@dataclass
class Context:
    options: RealisticOptions
    stack: Stack
    tile: int
    tile_pad: int
    pre_pad: int
    stats_client: Any = None  # tritonclient.grpc.InferenceServerClient, for counters
    gateways: dict[str, Gateway] = field(default_factory=dict)  # upscale model → its gateway
    runs: list[CaseRun] = field(default_factory=list)
    costs: list[CaseCost] = field(default_factory=list)
    floors: list[FloorRun] = field(default_factory=list)
    leak: LeakCheck | None = None
    notes: list[str] = field(default_factory=list)
    seconds: dict[Key, float] = field(default_factory=dict)  # per request, measured
    warmed: set[Key] = field(default_factory=set)
    modules: dict[str, Any] = field(default_factory=dict)  # PyTorch models by name
    _uploads: dict[int, list[Upload]] = field(default_factory=dict)
    _images: dict[int, list[Any]] = field(default_factory=dict)
    _group: GroupPhoto | None = None
    _landmarks: list[Any] | None = None

    @property
    def repository(self) -> Any:
        return self.stack.repository

    # --- inputs -----------------------------------------------------------------------------

    def uploads(self, side: int) -> list[Upload]:
        if side not in self._uploads:
            self._uploads[side] = upscale_uploads(side)
        return self._uploads[side]

    def images(self, side: int) -> list[Any]:
        """The uploads decoded (Triton direct starts from pixels: no codec)."""
        from perf.overheads import decode

        if side not in self._images:
            self._images[side] = [decode(upload.data).rgb for upload in self.uploads(side)]
        return self._images[side]

    def group(self) -> GroupPhoto:
        if self._group is None:
            cache = self.options.work / "insightface"
            self._group = group_photo(self.options.group_photo, cache)
        return self._group

    def group_source(self) -> str:
        return self._group.source if self._group is not None else "not used"

    def landmarks(self) -> list[Any]:
        """Landmarks of the faces the pipeline keeps in the group photo (in-process MTCNN)."""
        from perf.seeds import detect_landmarks

        if self._landmarks is None:
            self._landmarks = detect_landmarks(self.group().upload, min_score=MIN_SCORE)
        return self._landmarks

    # --- models -----------------------------------------------------------------------------

    def torch_model(self, name: str) -> Any:
        from perf.floors import config_thread_budget
        from perf.seeds import load_gfpgan, load_torch_model

        if name not in self.modules:
            threads = (config_thread_budget(self.repository, name), 1)
            load = load_gfpgan if name.startswith("gfpgan") else load_torch_model
            self.modules[name] = load(self.repository, name, self.options.tiny, threads)
        return self.modules[name]

    def gateway_url(self, model: str) -> str:
        gateway = self.gateways.get(model)
        if gateway is None or gateway.process is None:
            raise SkipStep(f"no gateway serves {model}")
        return gateway.url

    # --- measuring --------------------------------------------------------------------------

    def require_warm(self, key: Key) -> None:
        if key not in self.warmed:
            raise SkipStep("its warm-up did not run")

    def measure_case(
        self,
        key: Key,
        level: int,
        requests: int,
        build: FactoryBuilder,
        watch_models: Sequence[str] = (),
    ) -> CaseRun:
        scenario, model, side, path = key
        watch = TritonWatch(self.stats_client, tuple(watch_models)) if watch_models else None
        measured = measure(
            path,
            level,
            requests,
            build,
            unit="images/s",
            watch=watch,
            repeats=self.options.repeats,
        )
        run = CaseRun(scenario, model, side, measured.point, measured.stages, measured.notes)
        self.runs.append(run)
        if run.seconds_per_request is not None:
            self.seconds[key] = run.seconds_per_request
        return run

    def estimate(self, key: Key, requests: int, guess_s: float) -> float:
        """Seconds `requests` more requests of `key` should take: from what it cost per
        request so far, else the guess."""
        per_request = self.seconds.get(key, guess_s)
        return requests * per_request if math.isfinite(per_request) else requests * guess_s
