"""The image library behind the seed's /api/v1: files inside the media roots, their context
computed in batches (gateway.context.extractor) and kept in the vector store, search, deletion
and duplicates.

An image's id is derived from its real path (the same file processed twice is one record,
updated in place); its content hash decides whether it must be processed again (unchanged →
skipped unless `force_reprocess`) and whether its context can be copied from an identical file
already stored (`was_duplicate`)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from gateway.context.duplicates import DuplicateGroup, describe_groups, group_pairs, to_remove
from gateway.context.extractor import ContextModels, ImageContext, Installed, extract
from gateway.context.paths import MediaRoots, is_utf8
from gateway.context.ranking import candidate_count, combine, space_weights
from gateway.errors import BadRequest, FacetError, NotFound, PayloadTooLarge
from gateway.imageio import DecodedImage, decode_image
from gateway.settings import Settings
from gateway.vectors.store import Vector, VectorRecord, VectorStore
from triton_core.catalog import SYNTHETIC_WARNING, ModelCatalog

log = logging.getLogger(__name__)
Progress = Callable[[int, int, str], None]  # done, total, the file just finished
SPACES = ("clip", "text")


class CatalogSource(Protocol):
    """What the library reads of the Triton client: the model facts of the last poll."""

    @property
    def catalog(self) -> ModelCatalog: ...


def image_id_for(path: Path) -> str:
    return hashlib.sha256(str(path).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class LoadedImage:
    path: Path
    data_hash: str
    file_size: int
    decoded: DecodedImage


@dataclass
class ProcessOutcome:
    record: VectorRecord
    was_duplicate: bool = False
    skipped: bool = False


@dataclass
class DirectoryOutcome:
    total_files: int = 0
    processed_ids: list[str] = field(default_factory=list)
    skipped_ids: list[str] = field(default_factory=list)
    failed_files: list[str] = field(default_factory=list)
    failures: dict[str, str] = field(default_factory=dict)
    processing_time: float = 0.0


class ImageLibrary:
    def __init__(
        self,
        settings: Settings,
        store: VectorStore,
        models: ContextModels,
        roots: MediaRoots,
        triton: CatalogSource,
    ) -> None:
        self.settings = settings
        self.store = store
        self.models = models
        self.roots = roots
        self._triton = triton

    # --- weights -----------------------------------------------------------------------
    def synthetic_models(self) -> list[str]:
        catalog = self._triton.catalog
        found: list[str] = []
        for model in self.models.names().values():
            found.extend(catalog.weights(model).synthetic_models)
        return sorted(set(found))

    def warning(self, synthetic: Sequence[str] | None = None) -> str | None:
        names = self.synthetic_models() if synthetic is None else list(synthetic)
        parts = [f"{', '.join(names)}: {SYNTHETIC_WARNING}"] if names else []
        missing = self.missing_models()
        if missing:
            parts.append(
                f"{', '.join(missing)}: not installed in Triton (no captions or CLIP "
                "similarity from them)"
            )
        return "; ".join(parts) or None

    def installed(self) -> Installed:
        catalog = self._triton.catalog
        names = self.models.names()
        return Installed(
            captioner=catalog.is_installed(names["blip_model"]),
            clip=catalog.is_installed(names["clip_model"])
            and catalog.is_installed(names["clip_text_model"]),
        )

    def missing_models(self) -> list[str]:
        """Optional models Triton does not have, named for the answers' warning."""
        installed, names = self.installed(), self.models.names()
        missing = [] if installed.captioner else [names["blip_model"]]
        if not installed.clip:
            missing += [names["clip_model"], names["clip_text_model"]]
        return missing

    def space_synthetic(self) -> dict[str, bool]:
        catalog = self._triton.catalog
        names = self.models.names()
        return {
            "clip": catalog.weights(names["clip_model"]).synthetic
            or catalog.weights(names["clip_text_model"]).synthetic,
            "text": catalog.weights(names["sentence_transformer"]).synthetic,
        }

    # --- processing --------------------------------------------------------------------
    async def process_file(self, name: str, *, force: bool) -> ProcessOutcome:
        path = self.roots.existing_file(name)
        outcomes = await self._process_batch([path], force=force, strict=True)
        outcome = outcomes[0]
        assert isinstance(outcome, ProcessOutcome)
        return outcome

    async def process_paths(
        self, paths: Sequence[Path], *, force: bool, progress: Progress | None = None
    ) -> DirectoryOutcome:
        """Every path, `context_batch_images` at a time; a file that fails is listed with its
        reason and the rest go on."""
        started = time.perf_counter()
        outcome = DirectoryOutcome(total_files=len(paths))
        batch = self.settings.context_batch_images
        for start in range(0, len(paths), batch):
            chunk = list(paths[start : start + batch])
            results = await self._process_batch(chunk, force=force, strict=False)
            for path, result in zip(chunk, results, strict=True):
                if isinstance(result, ProcessOutcome):
                    target = outcome.skipped_ids if result.skipped else outcome.processed_ids
                    target.append(result.record.id)
                else:
                    outcome.failed_files.append(str(path))
                    outcome.failures[str(path)] = result
            if progress is not None:
                progress(start + len(chunk), len(paths), str(chunk[-1]))
        outcome.processing_time = time.perf_counter() - started
        return outcome

    async def _process_batch(
        self, paths: Sequence[Path], *, force: bool, strict: bool
    ) -> list[ProcessOutcome | str]:
        """One outcome or one failure reason per path; `strict` raises the first failure."""
        results: list[ProcessOutcome | str | None] = [None] * len(paths)
        to_compute: list[tuple[int, LoadedImage]] = []
        for index, path in enumerate(paths):
            try:
                loaded = await asyncio.to_thread(self._load, path)
                reused = await asyncio.to_thread(self._reuse, loaded, force)
            except FacetError as exc:
                if strict:
                    raise
                results[index] = exc.detail
                continue
            if reused is not None:
                results[index] = reused
            else:
                to_compute.append((index, loaded))
        if to_compute:
            contexts = await extract(
                self.models,
                [loaded.decoded.rgb for _, loaded in to_compute],
                object_score=self.settings.context_object_score,
                installed=self.installed(),
            )
            synthetic = self.synthetic_models()
            for (index, loaded), context in zip(to_compute, contexts, strict=True):
                record = await asyncio.to_thread(self._store_new, loaded, context, synthetic)
                results[index] = ProcessOutcome(record)
        return [result if result is not None else "not processed" for result in results]

    def _load(self, path: Path) -> LoadedImage:
        limit = self.settings.max_upload_bytes
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                if size > limit:
                    raise PayloadTooLarge(f"{path.name}: {size} bytes; the limit is {limit}")
                data = handle.read(limit + 1)
        except FileNotFoundError:
            raise NotFound(f"image_path: {path} does not exist") from None
        except OSError as exc:
            raise BadRequest(f"{path.name}: cannot be read ({exc.strerror})") from None
        if len(data) > limit:
            raise PayloadTooLarge(f"{path.name}: over the limit of {limit} bytes")
        decoded = decode_image(
            data,
            max_bytes=limit,
            max_pixels=self.settings.max_input_pixels,
            max_side=self.settings.max_image_side,
        )
        return LoadedImage(path, hashlib.sha256(data).hexdigest(), len(data), decoded)

    def _reuse(self, loaded: LoadedImage, force: bool) -> ProcessOutcome | None:
        """The stored record when the file is unchanged, or a copy of an identical file's
        context; None when the models must run."""
        image_id = image_id_for(loaded.path)
        existing = self.store.get(image_id)
        if existing is not None and existing.content_hash == loaded.data_hash and not force:
            return ProcessOutcome(existing, skipped=True)
        if force:
            return None
        for twin in self.store.find_by_hash(loaded.data_hash):
            if twin.id == image_id:
                continue
            vectors = {s: v for s in SPACES if (v := self.store.get_vector(twin.id, s)) is not None}
            if "text" not in vectors:
                continue
            metadata = file_metadata(loaded) | {
                key: twin.metadata.get(key)
                for key in ("caption", "objects", "detections", "search_text", "synthetic_models")
            }
            return ProcessOutcome(self.store.upsert(image_id, vectors, metadata), True)
        return None

    def _store_new(
        self, loaded: LoadedImage, context: ImageContext, synthetic: list[str]
    ) -> VectorRecord:
        metadata = file_metadata(loaded) | {
            "caption": context.caption,
            "objects": list(context.objects),
            "detections": [
                {
                    "label": d.label,
                    "confidence": round(d.confidence, 4),
                    "bbox": [round(v, 1) for v in d.box],
                }
                for d in context.detections
            ],
            "search_text": context.search_text,
            "synthetic_models": synthetic,
        }
        vectors = {"text": context.text}
        if context.clip is not None:
            vectors["clip"] = context.clip
        return self.store.upsert(image_id_for(loaded.path), vectors, metadata)

    # --- reading -----------------------------------------------------------------------
    def get(self, image_id: str) -> VectorRecord:
        record = self.store.get(image_id)
        if record is None:
            raise NotFound(f"no image with id '{image_id}'")
        return record

    def file_of(self, image_id: str) -> Path:
        """The record's file, still inside the media roots and still there."""
        record = self.get(image_id)
        if record.path is None:
            raise NotFound(f"image '{image_id}' has no file")
        return self.roots.existing_file(record.path)

    async def search(
        self, query: str, *, limit: int, min_score: float | None, objects: list[str] | None
    ) -> list[tuple[VectorRecord, float, float]]:
        if not query.strip():
            raise BadRequest("query: give a non-empty text to search for")
        if not is_utf8(query):  # a JSON escape such as "\ud800" (/ws/search): no UTF-8 for it
            raise BadRequest("query: the text must be valid Unicode (no lone surrogates)")
        synthetic = self.space_synthetic()
        if not self.installed().clip:
            synthetic.pop("clip")
        weights = space_weights(synthetic)
        # Only the spaces that count are embedded: a query costs one text-encoder call each.
        embed = {"text": self.models.text.embed, "clip": self.models.clip.embed_texts}
        vectors = await asyncio.gather(*(embed[space]([query]) for space in weights))
        queries = {space: found[0] for space, found in zip(weights, vectors, strict=True)}
        return await asyncio.to_thread(
            self._ranked, queries, weights, limit=limit, min_score=min_score, objects=objects
        )

    def _ranked(
        self,
        queries: dict[str, Vector],
        weights: dict[str, float],
        *,
        limit: int,
        min_score: float | None,
        objects: list[str] | None,
    ) -> list[tuple[VectorRecord, float, float]]:
        """One worker-thread hop: each space's neighbours, the missing scores from stored
        vectors, the combination, and the records the searches already returned."""
        # One space ranks alone: its own top `limit` are the answer, no extra candidates.
        k = limit if len(weights) == 1 else candidate_count(limit)
        scores: dict[str, dict[str, float]] = {}
        records: dict[str, VectorRecord] = {}
        for space in weights:
            hits = self.store.search(space, queries[space], k=k, objects=objects)
            scores[space] = {hit.record.id: hit.score for hit in hits}
            records.update((hit.record.id, hit.record) for hit in hits)
        for space in weights:
            query = queries[space] / max(float(np.linalg.norm(queries[space])), 1e-12)
            for image_id in set(records) - set(scores[space]):
                vector = self.store.get_vector(image_id, space)
                if vector is not None:
                    scores[space][image_id] = float(np.dot(query, vector))
        ranked = combine(scores, weights, limit=limit, min_score=min_score)
        return [(records[item.image_id], item.score, item.distance) for item in ranked]

    def delete(self, image_id: str, *, delete_file: bool) -> tuple[bool, bool]:
        """(record deleted, file deleted). The file only when it is inside the media roots."""
        record = self.get(image_id)
        file_deleted = False
        if delete_file and record.path:
            path = Path(record.path)
            if self.roots.contains(path) and path.is_file():
                path.unlink(missing_ok=True)
                file_deleted = True
        return self.store.delete(image_id), file_deleted

    # --- duplicates --------------------------------------------------------------------
    def duplicate_groups(
        self, threshold: float, *, within: Sequence[str] | None = None, around: str | None = None
    ) -> list[DuplicateGroup]:
        """Groups among all records (or the ids in `within`); with `around`, only its group."""
        if not -1.0 <= threshold <= 1.0:
            raise BadRequest("similarity_threshold must be between -1 and 1")
        records = self._all_records()
        allowed = set(within) if within is not None else None
        order = {r.id: i for i, r in enumerate(records) if allowed is None or r.id in allowed}
        pairs = []
        if self.near_duplicates_checked():
            pairs = [
                (p.first, p.second)
                for p in self.store.nearest_pairs("clip", threshold, limit=self._pair_limit())
                if p.first in order and p.second in order
            ]
        by_hash: dict[str, list[str]] = {}
        for record in records:
            if record.id in order and record.content_hash:
                by_hash.setdefault(record.content_hash, []).append(record.id)
        for same in by_hash.values():
            pairs.extend((same[0], other) for other in same[1:])
        groups = group_pairs(pairs, order)
        if around is not None:
            groups = [group for group in groups if around in group]
        paths = {r.id: r.path or "" for r in records}
        hashes = {r.id: r.content_hash for r in records}
        return describe_groups(
            groups, lambda a, b: self._similarity(a, b, hashes), lambda i: paths[i]
        )

    def near_duplicates_checked(self) -> bool:
        """Near duplicates need CLIP with real weights: a synthetic CLIP scores unrelated
        photos 0.96–0.98 alike, and a removal would delete them. Without it only the same
        bytes count as duplicates (and answers say so)."""
        return self.installed().clip and not self.space_synthetic()["clip"]

    def duplicates_warning(self) -> str | None:
        parts = (
            []
            if self.near_duplicates_checked()
            else [
                "near duplicates not checked (CLIP is synthetic or not installed): only files "
                "with the same bytes are grouped"
            ]
        )
        general = self.warning()
        return "; ".join([*parts, *([general] if general else [])]) or None

    def _pair_limit(self) -> int:
        return max(10_000, 4 * self.store.count())

    def _all_records(self) -> list[VectorRecord]:
        records: list[VectorRecord] = []
        page = 1000
        while True:
            found = self.store.list(limit=page, offset=len(records))
            records.extend(found)
            if len(found) < page:
                return records

    def _similarity(self, first: str, second: str, hashes: dict[str, str | None]) -> float:
        if hashes.get(first) is not None and hashes.get(first) == hashes.get(second):
            return 1.0
        a, b = self.store.get_vector(first, "clip"), self.store.get_vector(second, "clip")
        if a is None or b is None:
            return 0.0
        return float(min(1.0, max(-1.0, np.dot(a, b))))

    def remove_duplicates(
        self, threshold: float, *, dry_run: bool, keep_first: bool, delete_files: bool
    ) -> tuple[list[DuplicateGroup], list[str]]:
        """Every member but one per group, after checking the files against the records: a
        group whose kept file is gone or changed since it was indexed is skipped (its members
        may be the last copies), and so is a member whose own file changed (it is no longer
        what was compared). The same checks run for a dry run, so it names what would go."""
        groups = self.duplicate_groups(threshold)
        removed: list[str] = []
        for group in groups:
            members = [group.representative_id, *group.duplicate_ids]
            keeper = members[0] if keep_first else members[-1]
            if not self._file_matches(keeper):
                continue
            removed.extend(
                member
                for member in to_remove([group], keep_first=keep_first)
                if self._file_matches(member) or not delete_files
            )
        if not dry_run:
            for image_id in removed:
                self.delete(image_id, delete_file=delete_files)
        return groups, removed

    def _file_matches(self, image_id: str) -> bool:
        """The record's file is still there, inside the roots, with the bytes it was indexed
        with."""
        record = self.store.get(image_id)
        if record is None or not record.path or not record.content_hash:
            return False
        path = Path(record.path)
        if not self.roots.contains(path):
            return False
        try:
            with open(path, "rb") as handle:
                digest = hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError:
            return False
        return digest == record.content_hash

    async def compare(self, first: Path, second: Path) -> dict[str, Any]:
        """Two files' similarity without storing anything."""
        loaded = [await asyncio.to_thread(self._load, path) for path in (first, second)]
        contexts = await extract(
            self.models,
            [item.decoded.rgb for item in loaded],
            object_score=self.settings.context_object_score,
            installed=self.installed(),
        )
        first_clip, second_clip = contexts[0].clip, contexts[1].clip
        clip = (
            0.0
            if first_clip is None or second_clip is None
            else float(np.dot(first_clip, second_clip))
        )
        text = float(np.dot(contexts[0].text, contexts[1].text))
        return {
            "exact_match": loaded[0].data_hash == loaded[1].data_hash,
            "clip_similarity": round(min(1.0, max(-1.0, clip)), 6),
            "text_similarity": round(min(1.0, max(-1.0, text)), 6),
            "captions": [c.caption for c in contexts],
            "objects": [list(c.objects) for c in contexts],
        }


def file_metadata(loaded: LoadedImage) -> dict[str, Any]:
    decoded = loaded.decoded
    return {
        "path": str(loaded.path),
        "filename": loaded.path.name,
        "size": [decoded.width, decoded.height],
        "file_size": loaded.file_size,
        "format": decoded.format,
        "content_hash": loaded.data_hash,
        "processed_at": time.time(),
    }
