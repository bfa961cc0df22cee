"""In a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright (PyPI ``playwright``, which
brings its driver but here never downloads a browser) loads the page, uploads a clip, presses Upscale, waits for
the result and checks that the result video plays. Screenshots go to ``$VSRAPP_TEST_ARTIFACTS`` (default
``test-artifacts/`` in the repository).

Without Chromium or Playwright the test skips with the reason; with ``CI`` set it fails instead. The browser may
talk to 127.0.0.1 only: every other request is aborted and listed in the artifacts.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest
from webui_support import running_server

pytestmark = pytest.mark.timeout(300)

REPO = Path(__file__).resolve().parents[1]
ARTIFACTS = Path(os.environ.get("VSRAPP_TEST_ARTIFACTS", REPO / "test-artifacts"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  # Chromium's built-in test camera (a moving pattern) and no permission prompt, for the webcam tab.
                  "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream"]
WAIT_MS = 120_000  # the longest any one step may take (an upscale of the 2 s clip takes a few seconds)


def _unavailable(message: str):
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def chromium() -> str:
    path = os.environ.get("VSRAPP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if not path:
        _unavailable("chromium not found (apt-get install chromium, or set VSRAPP_CHROMIUM)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _unavailable("the playwright Python package is not installed (pip install playwright)")
    if not shutil.which("ffprobe"):
        _unavailable("ffmpeg/ffprobe not on PATH (apt-get install ffmpeg): Gradio's streamed preview needs them")
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp, running_server(tmp_path_factory.mktemp("webui-browser"), mp) as srv:
        yield srv


@pytest.fixture
def page(chromium, server, request):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    blocked: list[str] = []

    def local_only(route):
        host = urlparse(route.request.url).hostname
        if host in ("127.0.0.1", "localhost") or route.request.url.startswith(("data:", "blob:")):
            route.continue_()
        else:
            blocked.append(route.request.url)
            route.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_FLAGS, headless=True)
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1100}, permissions=["camera"])
            context.route("**/*", local_only)
            pg = context.new_page()
            console: list[str] = []
            pg.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
            yield pg
            with open(ARTIFACTS / "webui-browser-log.txt", "a") as log:
                log.write(
                    f"== {request.node.name}\nblocked (non-local) requests:\n" + "\n".join(blocked)
                    + "\n\nconsole:\n" + "\n".join(console) + "\n\n")
        finally:
            browser.close()


def test_upload_upscale_and_play(page, server, media):
    page.goto(server.url, wait_until="domcontentloaded", timeout=WAIT_MS)
    page.wait_for_selector("#upscale", timeout=WAIT_MS)
    # The model menu shows the measured quality; the test server offers bicubic and a tiny network.
    assert "23.78 dB" in page.inner_text("#model-info")

    page.set_input_files("#input-video input[type=file]", str(media.h264_aac), timeout=WAIT_MS)
    page.wait_for_selector("#input-video video", timeout=WAIT_MS)  # uploaded and shown
    page.wait_for_function("document.querySelector('#video-info').innerText.includes('256x192')",
                           timeout=WAIT_MS)
    page.click("#upscale")

    page.wait_for_function("document.querySelector('#status').innerText.includes('Done')", timeout=WAIT_MS)
    page.wait_for_selector("#result video", timeout=WAIT_MS)
    # Playable: the browser loads the metadata and the first frame, and playback moves the clock.
    page.wait_for_function("""() => {
        const v = document.querySelector('#result video');
        return v && v.readyState >= 2 && v.videoWidth > 0;
    }""", timeout=WAIT_MS)
    facts = page.evaluate("""async () => {
        const v = document.querySelector('#result video');
        v.muted = true;
        await v.play();
        await new Promise(r => setTimeout(r, 700));
        return {width: v.videoWidth, height: v.videoHeight, duration: v.duration, time: v.currentTime,
                error: v.error && v.error.code, h264: v.canPlayType('video/mp4; codecs="avc1.64001e"')};
    }""")
    page.screenshot(path=str(ARTIFACTS / "webui-result.png"), full_page=True)
    assert facts["error"] is None
    assert (facts["width"], facts["height"]) == (256, 192)
    assert facts["duration"] == pytest.approx(2.0, abs=0.1)
    assert facts["time"] > 0, facts
    status = page.inner_text("#status")
    assert "Done: 50 frames" in status and "audio kept: aac" in status
    # The live preview received the streamed chunks.
    assert page.query_selector("#preview video") is not None


def test_webcam_live(page, server):
    """Chromium's fake camera streams into the Webcam tab; each frame comes back upscaled with a speed verdict."""
    page.goto(server.url, wait_until="domcontentloaded", timeout=WAIT_MS)
    page.wait_for_selector("#upscale", timeout=WAIT_MS)
    page.get_by_role("tab", name="Webcam (live)").click()
    page.get_by_text("Click to Access Webcam").click(timeout=WAIT_MS)
    page.get_by_role("button", name="capture photo").click(timeout=WAIT_MS)  # the "Record" button: start streaming
    page.wait_for_function("document.querySelector('#live-status').innerText.includes('ms per frame')",
                           timeout=WAIT_MS)
    # The picture is replaced several times a second: read its size in the same breath as seeing it loaded.
    size = page.wait_for_function("""() => { const i = document.querySelector('#live-output img');
                                             return i && i.complete && i.naturalWidth > 0
                                                    && [i.naturalWidth, i.naturalHeight]; }""",
                                  timeout=WAIT_MS).json_value()
    page.screenshot(path=str(ARTIFACTS / "webui-webcam.png"), full_page=True)
    status = page.inner_text("#live-status")
    assert "240x180 -> 960x720" in status, status  # the fake camera's 640x480, scaled to 240 px, then x4
    assert size == [960, 720]
    assert "keeps up" in status or "cannot keep up" in status
