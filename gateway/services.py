"""The composition root: every long-lived part of the gateway, built once from the settings at
start-up and torn down at shutdown. Routes reach it through `request.app.state.services`."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.context.clip_session import TritonClip
from gateway.context.directory_task import KIND as DIRECTORY_TASK
from gateway.context.directory_task import DirectoryTask
from gateway.context.library import ImageLibrary
from gateway.context.objects_session import TritonObjectDetector
from gateway.context.paths import MediaRoots
from gateway.context.sessions import context_models
from gateway.faces.service import RestoreService
from gateway.jobs.batch_job import BatchRestoreJob
from gateway.jobs.queue import JobQueue, build_huey
from gateway.jobs.recovery import LeaseKeeper, recover_jobs
from gateway.jobs.runner import JobHandler, JobRunner
from gateway.jobs.store import JobStore, open_job_store
from gateway.jobs.upscale_job import UpscaleJob
from gateway.observability import GatewayMetrics
from gateway.pipelines.triton_upscaler import TritonTileUpscaler
from gateway.proxies import Network, parse_networks
from gateway.ratelimit import RateLimiter
from gateway.recognition.audit import AuditLog
from gateway.recognition.camera import CameraGate
from gateway.recognition.gallery import FaceGallery
from gateway.recognition.service import RecognitionService
from gateway.settings import Settings
from gateway.storage import FileStore
from gateway.swap.service import SwapService
from gateway.swap.video_job import SwapVideoJob
from gateway.triton_client import TritonClient
from gateway.vectors import open_vector_store
from gateway.vectors.store import VectorStore
from gateway.ws.hub import Hub
from triton_core.catalog import WeightFacts

log = logging.getLogger(__name__)
CLEANUP_INTERVAL_S = 60.0
SHUTDOWN_WAIT_S = 3.0


@dataclass
class Services:
    settings: Settings
    triton: TritonClient
    store: JobStore
    files: FileStore
    queue: JobQueue
    upscale_job: UpscaleJob
    upscaler: TritonTileUpscaler
    faces: RestoreService
    swap: SwapService
    swap_video: SwapVideoJob
    restore_slots: asyncio.Semaphore
    limiter: RateLimiter
    metrics: GatewayMetrics
    vectors: VectorStore
    library: ImageLibrary
    directory_task: DirectoryTask
    ws_hub: Hub
    recognition: RecognitionService
    camera_gate: CameraGate
    leases: LeaseKeeper
    trusted_proxies: list[Network]
    started_at: float = field(default_factory=time.time)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def upscale_weights(self) -> WeightFacts:
        """The weights behind the upscale ensemble, as Triton's configs say."""
        return self.triton.catalog.weights(self.upscaler.ensemble)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        # Workers block on coroutines of this loop: join them from a thread, never the loop.
        # A job still running after the wait stays `processing` and is requeued at next start.
        await asyncio.to_thread(self.queue.stop, SHUTDOWN_WAIT_S)
        await asyncio.to_thread(self.leases.stop)
        await self.triton.close()
        self.store.close()
        self.vectors.close()
        self.recognition.gallery.close()

    async def _expire_results(self) -> None:
        while True:
            await asyncio.sleep(CLEANUP_INTERVAL_S)
            try:
                await asyncio.to_thread(
                    expire_results, self.store, self.files, self.settings.result_ttl_s
                )
            except Exception:  # a failed sweep is retried at the next interval
                log.exception("expiring old results failed")

    async def _sweep_gallery(self) -> None:
        """Enrolments whose consent period has ended are deleted (BIPA: at the latest three
        years after collection; the retention setting is capped there)."""
        while True:
            try:
                removed = await asyncio.to_thread(self.recognition.gallery.sweep)
                if removed:
                    log.info("deleted %d expired face enrolments", removed)
            except Exception:  # retried at the next interval
                log.exception("sweeping expired face enrolments failed")
            await asyncio.sleep(self.settings.gallery_sweep_interval_s)


def open_gallery(settings: Settings) -> FaceGallery:
    """The face gallery's own collection, apart from the image library's records."""

    def open_store(spaces: Mapping[str, int]) -> VectorStore:
        return open_vector_store(
            settings, spaces, path=settings.gallery_database_path, table="facet_faces"
        )

    return FaceGallery(open_store, AuditLog(settings.gallery_audit_path))


def expire_results(store: JobStore, files: FileStore, ttl_s: float) -> int:
    """Delete finished jobs (and their files) older than the result TTL."""
    expired = store.expired(time.time() - ttl_s)
    for job in expired:
        files.remove(job.result_path)
        files.remove(job.input_path)
        store.delete(job.id)
    return len(expired)


async def start_services(settings: Settings, metrics: GatewayMetrics, hub: Hub) -> Services:
    triton = TritonClient(settings)
    await triton.start()
    trusted_proxies = parse_networks(settings.trusted_proxies)
    store = await asyncio.to_thread(open_job_store, settings)
    files = FileStore(settings.uploads_dir, settings.results_dir)
    upscaler = TritonTileUpscaler(triton, settings.upscale_model)
    faces = RestoreService(settings, triton, upscaler)
    upscale_job = UpscaleJob(settings, store, files, upscaler, faces)
    swap = SwapService(triton, faces, upscaler)
    swap_video = SwapVideoJob(settings, store, files, swap)
    vectors = await asyncio.to_thread(open_vector_store, settings)
    roots = MediaRoots.create(settings.media_roots)
    library = ImageLibrary(settings, vectors, context_models(triton), roots, triton)
    gallery = await asyncio.to_thread(open_gallery, settings)
    recognition = RecognitionService(
        settings, triton, gallery, TritonClip(triton), TritonObjectDetector(triton)
    )
    hub.bind_loop(asyncio.get_running_loop())
    directory_task = DirectoryTask(store, library, hub.publish)
    handlers: dict[str, JobHandler] = {
        "upscale": upscale_job,
        "batch": BatchRestoreJob(settings, store, files, faces),
        "swap_video": swap_video,
        DIRECTORY_TASK: directory_task,
    }
    runner = JobRunner(
        store,
        files,
        handlers,
        asyncio.get_running_loop(),
        settings.job_attempts,
        unavailable_window_s=settings.job_unavailable_window_s,
    )
    queue = JobQueue(build_huey(settings), runner.handle)
    runner.set_requeue(queue.enqueue)
    limiter = RateLimiter(
        {
            "upscale": settings.rate_limit_upscale,
            "status": settings.rate_limit_status,
            "other": settings.rate_limit_other,
        },
        storage_uri=settings.redis_url.get_secret_value() or "memory://",
    )
    metrics.watch_jobs(store)
    services = Services(
        settings,
        triton,
        store,
        files,
        queue,
        upscale_job,
        upscaler,
        faces,
        swap,
        swap_video,
        asyncio.Semaphore(settings.restore_concurrency),
        limiter,
        metrics,
        vectors,
        library,
        directory_task,
        hub,
        recognition,
        CameraGate(settings.camera_max_connections),
        LeaseKeeper(store, queue, files, settings.job_attempts),
        trusted_proxies,
    )
    report = recover_jobs(store, queue, files, settings.job_attempts)
    if report:
        log.warning("recovered jobs after restart: %s", report)
    services.leases.start()
    queue.start(settings.job_workers)
    services._tasks.append(asyncio.create_task(services._expire_results()))
    services._tasks.append(asyncio.create_task(services._sweep_gallery()))
    return services
