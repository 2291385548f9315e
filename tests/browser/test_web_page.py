"""The web page at /ui in a real browser: Debian's Chromium (scripts/chromium.sh), driven by
Playwright, against a real Triton and gateway. It uploads real photos and a video with sound
that the test writes, runs an upscale, a restore, an image and a video swap to completion,
captions and searches, and checks what a person would see; screenshots go to
build/ui-screenshots/ for people to look at. Every request the page makes is recorded, and any
to another origin is refused and fails the test."""

from __future__ import annotations

import io
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import av
import pytest
from PIL import Image

from serving.launcher import TritonServer
from tests.e2e.conftest import (  # noqa: F401 (fixtures used by this module)
    Gateway,
    astronaut_png,
    make_gateway,
    photo_bytes,
    swap_repository,
)
from tests.integration.conftest import start_triton, tiny_sr_repository  # noqa: F401
from tests.photos import photo_bytes as real_photos
from tests.videos import write_video

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "build" / "ui-screenshots"
CANNOT_INSTALL = 3
CHROMIUM_ARGS = [
    # What a root CI machine with no network needs: no sandbox (root), no GPU, and none of
    # Chromium's own background connections.
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
JOB_TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def chromium() -> str:
    found = subprocess.run(
        ["bash", str(ROOT / "scripts" / "chromium.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if found.returncode == CANNOT_INSTALL:
        pytest.skip(f"BROWSER TESTS NOT RUN: {found.stderr.strip().splitlines()[-1]}")
    assert found.returncode == 0, found.stderr[-2000:]
    return found.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def gateway(
    start_triton,  # noqa: F811
    swap_repository: Path,  # noqa: F811
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Gateway]:
    triton: TritonServer = start_triton(swap_repository)
    served = make_gateway(triton, tmp_path_factory.mktemp("ui-gateway"))
    served.start()
    yield served
    served.stop()


@pytest.fixture
def page(chromium: str, gateway: Gateway) -> Iterator[tuple[object, list[str]]]:
    from playwright.sync_api import sync_playwright

    foreign: list[str] = []
    origin = urlsplit(gateway.url).netloc
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1100, "height": 900})

        def guard(route):  # type: ignore[no-untyped-def]
            url = route.request.url
            if url.startswith(("blob:", "data:")) or urlsplit(url).netloc == origin:
                route.continue_()
            else:
                foreign.append(url)
                route.abort()

        context.route("**/*", guard)
        tab = context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.goto(f"{gateway.url}/ui/")
        yield tab, foreign
        assert not errors, f"the page threw: {errors}"
        browser.close()
    assert not foreign, f"the page tried to reach other hosts: {foreign}"


def shot(tab, name: str) -> None:  # type: ignore[no-untyped-def]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    tab.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def natural_size(tab, selector: str) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    width, height = tab.eval_on_selector(selector, "img => [img.naturalWidth, img.naturalHeight]")
    return int(width), int(height)


def test_an_upscale_runs_to_completion_and_shows_the_result_twice_the_size(
    page, tmp_path: Path
) -> None:
    tab, _ = page
    photo = tmp_path / "photo.png"
    photo.write_bytes(photo_bytes((48, 36)))
    shot(tab, "1-upscale-empty")
    tab.set_input_files("#upscale-file", str(photo))
    tab.check("input[name=scale][value='2']")
    tab.click("#upscale-form button[type=submit]")
    tab.wait_for_selector("#result:not([hidden])", timeout=JOB_TIMEOUT_MS)
    assert tab.text_content("#message") == "Done."
    assert natural_size(tab, "#after") == (96, 72)
    assert natural_size(tab, "#before") == (48, 36)
    assert tab.text_content("#sizes") == "48 × 36 → 96 × 72"
    warning = tab.text_content("#warning") or ""
    assert "synthetic" in warning, "the tiny models run on synthetic weights"
    assert tab.is_visible("#warning")
    assert (tab.get_attribute("#download", "href") or "").startswith("blob:")
    tab.fill("#slider", "20")
    width = tab.eval_on_selector("#before-clip", "clip => clip.style.width")
    assert width == "20%"
    shot(tab, "2-upscale-result")


def test_a_restore_of_a_real_portrait_completes_at_the_chosen_upscale(page, tmp_path: Path) -> None:
    tab, _ = page
    portrait = real_photos(["obama"], tmp_path)["obama"]
    path = tmp_path / "obama.jpg"
    path.write_bytes(portrait)
    width, height = Image.open(io.BytesIO(portrait)).size
    tab.click("#tab-restore")
    assert tab.is_visible("#panel-restore") and not tab.is_visible("#panel-upscale")
    tab.set_input_files("#restore-file", str(path))
    tab.select_option("#restore-upscale", "2")
    tab.click("#restore-form button[type=submit]")
    tab.wait_for_selector("#result:not([hidden])", timeout=JOB_TIMEOUT_MS)
    assert tab.text_content("#message") == "Done."
    assert natural_size(tab, "#after") == (2 * width, 2 * height)
    assert "synthetic" in (tab.text_content("#warning") or "")
    shot(tab, "3-restore-result")


def test_a_refused_upload_shows_the_api_s_reason(page, tmp_path: Path) -> None:
    tab, _ = page
    fake = tmp_path / "notes.png"
    fake.write_bytes(b"this is not an image at all")
    tab.set_input_files("#upscale-file", str(fake))
    tab.click("#upscale-form button[type=submit]")
    tab.wait_for_selector("#message.error")
    assert (tab.text_content("#message") or "").startswith(("400", "415"))
    assert tab.is_hidden("#result")


def test_a_face_swap_into_a_group_photo_completes_and_shows_the_result(
    page, tmp_path: Path
) -> None:
    tab, _ = page
    group = tmp_path / "group.jpg"
    group.write_bytes(real_photos(["t1"], tmp_path)["t1"])
    source = tmp_path / "face.png"
    source.write_bytes(astronaut_png())
    width, height = Image.open(group).size
    tab.click("#tab-swap")
    tab.set_input_files("#swap-target", str(group))
    tab.set_input_files("#swap-source", str(source))
    tab.click("#swap-form button[type=submit]")
    tab.wait_for_selector("#result:not([hidden])", timeout=JOB_TIMEOUT_MS)
    assert tab.text_content("#message") == "Done."
    assert natural_size(tab, "#after") == (width, height)
    assert tab.is_hidden("#video-result")
    assert "synthetic" in (tab.text_content("#warning") or "")
    shot(tab, "5-swap-image")


def test_a_video_swap_shows_its_progress_and_plays_the_result_with_its_sound(
    page, gateway: Gateway, tmp_path: Path
) -> None:
    import numpy as np

    tab, _ = page
    portrait = np.asarray(Image.open(io.BytesIO(astronaut_png(128))).convert("RGB"))
    frames = [np.roll(portrait, shift, axis=1) for shift in range(0, 24, 2)]
    video = tmp_path / "clip.mp4"
    write_video(video, frames, fps=12)
    source = tmp_path / "face.png"
    source.write_bytes(astronaut_png())
    tab.click("#tab-swap")
    tab.set_input_files("#swap-target", str(video))
    tab.set_input_files("#swap-source", str(source))
    tab.click("#swap-form button[type=submit]")
    tab.wait_for_selector("#progress:not([hidden])", timeout=JOB_TIMEOUT_MS)
    tab.wait_for_selector("#result:not([hidden])", timeout=JOB_TIMEOUT_MS)
    assert tab.text_content("#message") == "Done."
    assert tab.is_visible("#video-result") and tab.is_hidden("#compare")
    media = tab.eval_on_selector(
        "#video-result",
        """video => new Promise((resolve) => {
            const report = () => resolve({ready: video.readyState, duration: video.duration,
                                          error: video.error && video.error.message});
            video.onloadedmetadata = report;
            video.onerror = report;
            setTimeout(report, 20000);
            if (video.readyState >= 1) report();
        })""",
    )
    assert media["ready"] >= 1 and not media["error"], f"the browser cannot play it: {media}"
    duration = media["duration"]
    assert abs(duration - len(frames) / 12) < 0.2
    assert (tab.get_attribute("#download", "download") or "").endswith(".mp4")
    name = tab.get_attribute("#download", "download") or ""
    with gateway.client() as client:  # the page's CSP keeps even its own blob: out of fetch
        played = client.get(f"/download/{name}").content
    result = tmp_path / "result.mp4"
    result.write_bytes(played)
    with av.open(str(result)) as container:
        assert container.streams.audio, "the sound is kept"
        assert sum(1 for _ in container.decode(video=0)) == len(frames)
    shot(tab, "6-swap-video")


def test_a_photo_is_captioned_added_and_found_again_by_text(page, tmp_path: Path) -> None:
    tab, _ = page
    photo = tmp_path / "portrait.jpg"
    photo.write_bytes(real_photos(["obama"], tmp_path)["obama"])
    tab.click("#tab-search")
    tab.set_input_files("#index-file", str(photo))
    tab.click("#index-form button[type=submit]")
    tab.wait_for_selector("#search-results li", timeout=JOB_TIMEOUT_MS)
    assert (tab.text_content("#message") or "").startswith("Added portrait.jpg")
    objects = tab.text_content("#search-results li") or ""
    assert "person" in objects, "NanoDet runs on real weights: the portrait shows a person"
    tab.fill("#search-query", "a person")
    tab.click("#search-form button[type=submit]")
    tab.wait_for_selector("#message:has-text('found')", timeout=JOB_TIMEOUT_MS)
    assert tab.locator("#search-results li").count() >= 1
    thumb = tab.eval_on_selector("#search-results img", "img => img.naturalWidth")
    assert thumb > 0, "the thumbnail comes from the library's own download route"
    assert "synthetic" in (tab.text_content("#warning") or ""), "BLIP and CLIP are synthetic here"
    shot(tab, "7-search")


def test_the_tabs_work_from_the_keyboard_and_the_page_fits_a_phone(page) -> None:
    tab, _ = page
    tab.focus("#tab-upscale")
    tab.keyboard.press("ArrowRight")
    assert tab.get_attribute("#tab-restore", "aria-selected") == "true"
    assert tab.evaluate("document.activeElement.id") == "tab-restore"
    tab.keyboard.press("ArrowLeft")
    assert tab.is_visible("#panel-upscale")
    tab.keyboard.press("ArrowLeft")
    assert tab.get_attribute("#tab-search", "aria-selected") == "true", "the arrows wrap round"
    fields = ("#upscale-file", "#restore-upscale", "#restore-weight", "#slider", "#swap-target")
    for field in (*fields, "#swap-source", "#swap-faces", "#index-file", "#search-query"):
        labelled = tab.eval_on_selector(field, "el => el.labels.length > 0")
        assert labelled, f"{field} has no label"
    tab.set_viewport_size({"width": 360, "height": 740})
    overflow = tab.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, "no sideways scrolling on a phone-width screen"
    shot(tab, "4-phone-width")


def test_the_page_is_served_with_a_policy_that_keeps_it_on_this_server(gateway: Gateway) -> None:
    with gateway.client() as client:
        answer = client.get("/ui/")
        assert answer.status_code == 200
        policy = answer.headers["Content-Security-Policy"]
        assert "default-src 'none'" in policy and "connect-src 'self'" in policy
        assert client.get("/ui/app.js").headers["content-type"].startswith("text/javascript")
        assert client.get("/ui/../settings.py").status_code == 404
        assert client.get("/ui/secrets.txt").status_code == 404
        assert "/ui/" in client.get("/openapi.json").json()["info"]["description"]
