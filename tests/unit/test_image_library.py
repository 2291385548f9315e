"""The image library's orchestration over a real sqlite-vec store: one model call per batch,
unchanged files skipped, identical files reuse their twin's context, failures listed per
file, search combining spaces, duplicates grouped, deletes real. The model sessions are
stand-ins whose answers depend on the pixels and texts they get."""

from __future__ import annotations

import asyncio
import hashlib
import io
from collections.abc import Coroutine, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

import numpy as np
import pytest
from PIL import Image

from gateway.context.extractor import ContextModels
from gateway.context.library import ImageLibrary, image_id_for
from gateway.context.objects_session import Detection
from gateway.context.paths import MediaRoots
from gateway.errors import Forbidden, UnsupportedMediaType
from gateway.settings import Settings
from gateway.vectors.sqlite_vec import SqliteVecStore
from triton_core.catalog import ModelCatalog, ModelFacts


def unit(values: np.ndarray) -> np.ndarray:
    return (values / np.linalg.norm(values)).astype(np.float32)


def text_vector(text: str, dim: int) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
    return unit(np.random.default_rng(seed).normal(size=dim))


class Calls:
    def __init__(self) -> None:
        self.batches: list[tuple[str, int]] = []


class Captioner:
    model = "caption_blip"

    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def caption(self, images: Sequence[np.ndarray]) -> list[str]:
        self.calls.batches.append(("caption", len(images)))
        return ["bright picture" if i.mean() > 127 else "dark picture" for i in images]


class Clip:
    image_model = "clip_vit_b32_visual"
    text_model = "embed_clip_text"

    def __init__(self, calls: Calls) -> None:
        self.calls = calls

    async def embed_images(self, images: Sequence[np.ndarray]) -> np.ndarray:
        self.calls.batches.append(("clip_image", len(images)))
        # colour histogram: similar pictures are near
        return np.stack([unit(np.histogram(i, bins=512, range=(0, 256))[0] + 1.0) for i in images])

    async def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        return np.stack([text_vector(t, 512) for t in texts])


class Text:
    model = "embed_text"

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        # the query "bright picture" lands on the caption's own vector
        return np.stack([text_vector(t.split(".")[0], 384) for t in texts])


class Objects:
    model = "detect_objects"

    async def detect(self, images, *, min_score: float) -> list[list[Detection]]:
        return [[Detection("person", 0.9, (0, 0, 4, 4))] if i.mean() > 127 else [] for i in images]


def catalog(synthetic: Sequence[str] = ()) -> ModelCatalog:
    names = [
        "caption_blip",
        "clip_vit_b32_visual",
        "embed_clip_text",
        "embed_text",
        "detect_objects",
    ]
    return ModelCatalog(
        [
            ModelFacts(n, 0, (), (), "synthetic" if n in synthetic else "package", "MIT", (), {})
            for n in names
        ]
    )


def jpeg(value: int, size: int = 32) -> bytes:
    rng = np.random.default_rng(value)
    pixels = np.clip(rng.normal(value, 3, (size, size, 3)), 0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).save(out, "PNG")
    return out.getvalue()


def make_library(tmp_path: Path, synthetic: Sequence[str]):
    calls = Calls()
    settings = Settings(
        data_dir=tmp_path / "data", media_roots=[tmp_path / "media"], context_batch_images=4
    )
    store = SqliteVecStore(tmp_path / "vectors.sqlite3")
    models = ContextModels(Captioner(calls), Clip(calls), Text(), Objects())
    triton = SimpleNamespace(catalog=catalog(synthetic=synthetic))
    lib = ImageLibrary(settings, store, models, MediaRoots.create(settings.media_roots), triton)
    return lib, calls, tmp_path / "media", store


@pytest.fixture
def library(tmp_path: Path):
    """CLIP synthetic, as an offline install serves it."""
    lib, calls, media, store = make_library(tmp_path, ["clip_vit_b32_visual"])
    yield lib, calls, media
    store.close()


@pytest.fixture
def real_clip_library(tmp_path: Path):
    lib, calls, media, store = make_library(tmp_path, [])
    yield lib, calls, media
    store.close()


T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def test_a_directory_is_processed_with_one_call_per_model_per_batch(library) -> None:
    lib, calls, media = library
    paths = []
    for index in range(6):
        path = media / f"img{index}.png"
        path.write_bytes(jpeg(40 * index))
        paths.append(path.resolve())
    outcome = run(lib.process_paths(paths, force=False))
    assert len(outcome.processed_ids) == 6 and not outcome.failed_files
    assert [b for b in calls.batches if b[0] == "caption"] == [("caption", 4), ("caption", 2)]
    record = lib.get(image_id_for(paths[5]))
    assert record.caption == "bright picture" and record.objects == ("person",)
    assert record.metadata["synthetic_models"] == ["clip_vit_b32_visual"]


def test_an_unchanged_file_is_skipped_and_a_changed_one_processed_again(library) -> None:
    lib, _calls, media = library
    path = media / "a.png"
    path.write_bytes(jpeg(200))
    first = run(lib.process_file("a.png", force=False))
    again = run(lib.process_file("a.png", force=False))
    assert again.skipped and again.record.id == first.record.id
    path.write_bytes(jpeg(20))
    changed = run(lib.process_file("a.png", force=False))
    assert not changed.skipped and changed.record.caption == "dark picture"
    assert lib.store.count() == 1


def test_an_identical_file_reuses_its_twins_context_without_model_calls(library) -> None:
    lib, calls, media = library
    (media / "a.png").write_bytes(jpeg(200))
    (media / "copy.png").write_bytes(jpeg(200))
    run(lib.process_file("a.png", force=False))
    before = len(calls.batches)
    twin = run(lib.process_file("copy.png", force=False))
    assert twin.was_duplicate and len(calls.batches) == before
    assert twin.record.caption == "bright picture"
    assert lib.store.get_vector(twin.record.id, "clip") is not None


def test_a_bad_file_in_a_directory_is_listed_and_the_rest_processed(library) -> None:
    lib, _, media = library
    (media / "good.png").write_bytes(jpeg(100))
    (media / "bad.png").write_bytes(b"not an image at all")
    paths = sorted(p.resolve() for p in media.iterdir())
    outcome = run(lib.process_paths(paths, force=False))
    assert len(outcome.processed_ids) == 1
    assert outcome.failed_files == [str(media.resolve() / "bad.png")]
    assert "JPEG, PNG" in next(iter(outcome.failures.values()))


def test_one_bad_file_asked_for_by_name_raises_its_4xx(library) -> None:
    lib, _, media = library
    (media / "bad.png").write_bytes(b"GIF89a nope")
    with pytest.raises(UnsupportedMediaType):
        run(lib.process_file("bad.png", force=False))
    with pytest.raises(Forbidden):
        run(lib.process_file("../escape.png", force=False))


def test_search_ranks_by_the_real_space_only_while_clip_is_synthetic(library) -> None:
    lib, _, media = library
    for name, value in (("bright.png", 220), ("dark.png", 20)):
        (media / name).write_bytes(jpeg(value))
        run(lib.process_file(name, force=False))
    hits = run(lib.search("bright picture", limit=5, min_score=None, objects=None))
    assert hits[0][0].path.endswith("bright.png")
    assert hits[0][1] == pytest.approx(1.0, abs=1e-5)  # text space only: the caption itself
    assert hits[0][2] == pytest.approx(0.0, abs=1e-5)
    filtered = run(lib.search("dark picture", limit=5, min_score=None, objects=["person"]))
    assert [h[0].path.endswith("bright.png") for h in filtered] == [True]


def test_near_and_exact_duplicates_form_one_group_and_removal_is_real(real_clip_library) -> None:
    lib, _, media = real_clip_library
    (media / "a.png").write_bytes(jpeg(200))
    (media / "b.png").write_bytes(jpeg(200))  # same bytes
    (media / "c.png").write_bytes(jpeg(201))  # nearly the same histogram
    (media / "d.png").write_bytes(jpeg(30))
    paths = sorted(p.resolve() for p in media.iterdir())
    run(lib.process_paths(paths, force=True))
    groups = lib.duplicate_groups(0.9)
    assert len(groups) == 1
    assert [Path(p).name for p in groups[0].paths] == ["a.png", "b.png", "c.png"]
    assert groups[0].similarity_scores[0] == 1.0
    _kept, removed = lib.remove_duplicates(0.9, dry_run=True, keep_first=True, delete_files=False)
    assert lib.store.count() == 4 and len(removed) == 2
    lib.remove_duplicates(0.9, dry_run=False, keep_first=True, delete_files=True)
    assert lib.store.count() == 2
    assert sorted(p.name for p in media.iterdir()) == ["a.png", "d.png"]


def test_with_a_synthetic_clip_only_the_same_bytes_count_as_duplicates(library) -> None:
    lib, _, media = library
    (media / "a.png").write_bytes(jpeg(200))
    (media / "b.png").write_bytes(jpeg(200))  # same bytes
    (media / "c.png").write_bytes(jpeg(201))  # near, but only a real CLIP may say so
    paths = sorted(p.resolve() for p in media.iterdir())
    run(lib.process_paths(paths, force=True))
    groups = lib.duplicate_groups(0.9)
    assert [[Path(p).name for p in g.paths] for g in groups] == [["a.png", "b.png"]]
    assert "near duplicates not checked" in (lib.duplicates_warning() or "")


def test_removal_skips_a_group_whose_kept_file_is_gone_or_changed(real_clip_library) -> None:
    lib, _, media = real_clip_library
    for name in ("a.png", "b.png"):
        (media / name).write_bytes(jpeg(200))  # the same bytes: one group, a kept first
    paths = sorted(p.resolve() for p in media.iterdir())
    run(lib.process_paths(paths, force=True))
    (media / "a.png").unlink()  # the copy that would be kept is gone
    _, removed = lib.remove_duplicates(0.99, dry_run=False, keep_first=True, delete_files=True)
    assert removed == [] and (media / "b.png").is_file() and lib.store.count() == 2


def test_removal_keeps_a_member_whose_file_changed_since_it_was_indexed(real_clip_library) -> None:
    lib, _, media = real_clip_library
    for name in ("a.png", "b.png"):
        (media / name).write_bytes(jpeg(200))
    paths = sorted(p.resolve() for p in media.iterdir())
    run(lib.process_paths(paths, force=True))
    (media / "b.png").write_bytes(jpeg(10))  # edited after indexing: now unique
    _, removed = lib.remove_duplicates(0.99, dry_run=False, keep_first=True, delete_files=True)
    assert removed == [] and (media / "b.png").read_bytes() == jpeg(10)
