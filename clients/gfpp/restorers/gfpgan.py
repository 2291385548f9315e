"""GFPGAN v1.4 restoring on a Facet server, behind the seed's Restorer protocol.

The constructor takes the seed adapter's arguments: `device` is recorded and reported (the
server places its models), `bg_upsampler` is None or "realesrgan" (the server's Real-ESRGAN;
there is no local upsampler object to pass), `compile_mode` is accepted and has no effect.
`server=` picks the server (see `clients.gfpp.server`). Images are BGR arrays (as
`cv2.imread` gives) or file paths; `channel_order="rgb"` in the options says an array is RGB.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from clients.closing import ClosesOnExit
from clients.errors import NotFoundError, UnavailableError
from clients.gfpp.errors import SyntheticWeightsWarning
from clients.gfpp.io.images import ImageInput, Pixels, to_array, write_image
from clients.gfpp.names import BACKGROUND_UPSCALER, DETECTORS, SEED_MODEL_NAMES, VERSIONS
from clients.gfpp.restorers.base import RestoreResult
from clients.gfpp.restorers.options import (
    RESTORE_KEYS,
    RestoreOptions,
    ignored_keys,
    prepared_request,
    restore_options,
)
from clients.gfpp.server import FacetServer, resolve_server
from clients.gfpp.session import (
    FacetSession,
    Restored,
    RestoreRequest,
    ServedModel,
    SessionSource,
    new_session,
)

PLACEMENT: Final = "server"  # Triton's instance groups decide where each model runs


@dataclass(frozen=True)
class Prepared:
    request: RestoreRequest
    model: ServedModel
    ignored: list[str]


class FacetGFPGANRestorer(ClosesOnExit):
    """Use `prepare()` once, then `restore()` any number of times; `close()` (or `with`) ends
    the connection. `restore()` before `prepare()` prepares with the same options, as the
    seed's adapter does."""

    def __init__(
        self,
        device: str = "auto",
        bg_upsampler: Any = None,
        compile_mode: str = "none",
        *,
        server: SessionSource = None,
    ) -> None:
        self._device = str(device)
        self._background = upsampler_choice(bg_upsampler)
        self._compile_mode = compile_mode
        self._source = server
        self._session: FacetSession | None = None
        self._prepared: Prepared | None = None

    def close(self) -> None:
        """Close the connection this restorer opened (a session passed in stays open)."""
        if self._session is not None and self._session is not self._source:
            self._session.close()
        self._session = None
        self._prepared = None

    def prepare(self, cfg: dict[str, Any]) -> None:
        """Connect and check that the models a restoration with `cfg` needs are installed and
        not reported unready. Raises NotFoundError / UnavailableError saying which."""
        self._device = str(cfg.get("device", self._device))
        request = prepared_request(cfg, RestoreRequest(background=self._background))
        session = self._connect()
        served = session.served_models()
        check_served(served, request)
        model = served[VERSIONS[request.version]]
        if model.synthetic and model.warning:
            warnings.warn(model.warning, SyntheticWeightsWarning, stacklevel=2)
        # Keys only restore() reads are not ignored: restore() before prepare() passes them here.
        self._prepared = Prepared(request, model, ignored_keys(cfg, RESTORE_KEYS))

    def restore(self, image: Any, cfg: dict[str, Any]) -> RestoreResult:
        if self._prepared is None:
            self.prepare(cfg)
        assert self._prepared is not None and self._session is not None
        options = restore_options(cfg, self._prepared.request)
        source = ImageInput.from_source(image, options.channel_order)
        restored = self._session.restore(source, options.request)
        return self._result(source, options, restored, ignored_keys(cfg, RESTORE_KEYS))

    def _connect(self) -> FacetSession:
        if self._session is None:
            source = self._source
            if source is None or isinstance(source, FacetServer | str):
                self._session = new_session(resolve_server(source))
            else:
                self._session = source
        return self._session

    def _result(
        self, source: ImageInput, options: RestoreOptions, restored: Restored, ignored: list[str]
    ) -> RestoreResult:
        order = options.channel_order
        image = to_array(Pixels(restored.rgb, restored.alpha), order)
        crops = [to_array(Pixels(face, None), order) for face in restored.cropped_faces]
        faces = [to_array(Pixels(face, None), order) for face in restored.restored_faces]
        cropped_paths, restored_paths = save_faces(source, options, restored)
        restored_path = None
        if options.output_path is not None:
            restored_path = write_image(options.output_path, Pixels(restored.rgb, restored.alpha))
        return RestoreResult(
            input_path=source.path or options.input_path,
            restored_path=restored_path,
            restored_image=image,
            cropped_faces=cropped_paths,
            restored_faces=restored_paths,
            metrics=self._metrics(options.request, restored, ignored),
            cropped_face_images=crops,
            restored_face_images=faces,
        )

    def _metrics(
        self, request: RestoreRequest, restored: Restored, ignored: list[str]
    ) -> dict[str, Any]:
        assert self._prepared is not None and self._session is not None
        model = self._prepared.model
        server = self._session.server
        return {
            "model_name": SEED_MODEL_NAMES[model.name],
            "model_path": None,  # the weights live on the server
            "model_sha256": None,  # Triton's configs state the weights' kind, not their hash
            "served_model": model.name,
            "entry_point": model.entry_point,
            "model_version": model.version,
            "weights": model.weights,
            "licence": model.licence,
            "synthetic": restored.warning is not None,
            "warning": restored.warning,
            "via": server.via,
            "server": server.url,
            "device": {"requested": self._device, "placement": PLACEMENT},
            "version": request.version,
            "upscale": request.upscale,
            "weight": request.weight,
            "only_center_face": request.only_center_face,
            "detector": DETECTORS[request.detector],
            "background": BACKGROUND_UPSCALER if request.background else None,
            "faces_detected": restored.faces_detected,
            "faces_restored": restored.faces_restored,
            "restoration_id": restored.restoration_id,
            "timings": dict(restored.timings),
            "ignored_options": sorted({*self._prepared.ignored, *ignored}),
        }


def upsampler_choice(bg_upsampler: Any) -> bool:
    if bg_upsampler is None or bg_upsampler is False:
        return False
    if bg_upsampler is True or str(bg_upsampler).lower() == "realesrgan":
        return True
    raise TypeError(
        "bg_upsampler must be None or 'realesrgan' (the server's Real-ESRGAN); a local "
        f"upsampler object ({type(bg_upsampler).__name__}) cannot run on the server"
    )


def check_served(served: dict[str, ServedModel], request: RestoreRequest) -> None:
    needed = [VERSIONS[request.version], DETECTORS[request.detector]]
    if request.background:
        needed.append(BACKGROUND_UPSCALER)
    for name in needed:
        model = served.get(name)
        if model is None or not model.installed:
            raise NotFoundError(f"the Facet server has no model '{name}' installed")
        if model.ready is False:
            raise UnavailableError(f"model '{name}' is installed but not ready on the server")


def save_faces(
    source: ImageInput, options: RestoreOptions, restored: Restored
) -> tuple[list[str], list[str]]:
    """Write the faces as PNGs under `save_faces`: <stem>_<n>_cropped.png / _restored.png."""
    folder = options.save_faces
    if folder is None:
        return [], []
    stem = Path(source.name).stem or "image"
    cropped = [
        write_image(folder / f"{stem}_{i:02d}_cropped.png", Pixels(face, None))
        for i, face in enumerate(restored.cropped_faces)
    ]
    restored_paths = [
        write_image(folder / f"{stem}_{i:02d}_restored.png", Pixels(face, None))
        for i, face in enumerate(restored.restored_faces)
    ]
    return cropped, restored_paths
