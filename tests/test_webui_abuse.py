"""The web page under abuse (issue #20 item 6): a real server on loopback, driven by raw HTTP and gradio_client as
a careless or hostile visitor would. Every loop has a deadline; the whole module takes well under a minute.

- uploads over the size, length or pixel limits are refused before a frame of them is decoded;
- a file name full of ``../``, shell syntax, quotes, newlines and unicode stays a name: everything written lies
  under the server's folders and the result downloads;
- visitors queueing at once keep their places, and memory and the job folder stay bounded;
- a visitor who goes away mid-job frees the worker and the job's files.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import av
import httpx
import numpy as np
import pytest
from media import make_h264_aac
from webui_support import MAX_SECONDS, MAX_UPLOAD_MB, SLOW_STEP, running_server

from vsrapp.video import probe

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("abuse")
    cwd = root / "cwd"  # the server's current folder: a file name run as a command would land here
    cwd.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(cwd)
        with running_server(root / "srv", mp) as srv:
            srv.root, srv.cwd = root, cwd
            yield srv


@pytest.fixture
def http(server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as client:
        yield client


def upload(http: httpx.Client, name: str, data: bytes) -> str:
    """Upload as a browser does; the server's path of the stored file."""
    r = http.post("gradio_api/upload", files={"files": (name, data, "video/mp4")})
    assert r.status_code == 200, r.text
    return r.json()[0]


def call_upscale(http: httpx.Client, path: str, model: str = "bicubic") -> tuple[str, object]:
    """``/upscale`` through the REST API: ("complete", data) or ("error", message)."""
    file_data = {"path": path, "meta": {"_type": "gradio.FileData"}}
    r = http.post("gradio_api/call/upscale", json={"data": [file_data, model, "cpu", "auto"]})
    assert r.status_code == 200, r.text
    kind, data = "", None
    with http.stream("GET", f"gradio_api/call/upscale/{r.json()['event_id']}") as events:
        for line in events.iter_lines():  # ends when the server closes the stream after the last event
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: ") and kind in ("complete", "error"):
                data = json.loads(line.removeprefix("data: "))
    return kind, data


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()}


def job_folders(server) -> list[Path]:
    return list(server.work_dir.iterdir()) if server.work_dir.exists() else []


# --- limits: refused before any decoding --------------------------------------------------------------------------
def make_large(path: Path, w: int = 1296, h: int = 720) -> Path:
    """Two small H.264 frames of more pixels than the server takes (1280x720)."""
    with av.open(str(path), "w") as out:
        v = out.add_stream("libx264", rate=25, options={"preset": "ultrafast"})
        v.width, v.height, v.pix_fmt = w, h, "yuv420p"
        for i in range(2):
            frame = av.VideoFrame.from_ndarray(np.full((h, w, 3), 40 * i, np.uint8), format="rgb24")
            out.mux(v.encode(frame.reformat(format="yuv420p")))
        out.mux(v.encode(None))
    return path


def make_padded(path: Path, source: Path) -> Path:
    """A playable clip made larger than the upload limit by trailing bytes (players ignore them)."""
    path.write_bytes(source.read_bytes() + b"\0" * int(MAX_UPLOAD_MB * 1.5 * 2**20))
    return path


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """Every decode the server starts: probe's first frame, the job's reader, a job folder. The server runs in
    this process, so a spy sees them all, whatever the timing."""
    import vsrapp.video.info
    import vsrapp.web.preview
    from vsrapp.web.ui import WebApp

    seen: list[str] = []

    def spy(name: str, real):
        def wrapper(*args, **kwargs):
            seen.append(name)
            return real(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(vsrapp.video.info, "_first_frame", spy("first frame", vsrapp.video.info._first_frame))
    monkeypatch.setattr(vsrapp.web.preview, "stream_upscale", spy("job", vsrapp.web.preview.stream_upscale))
    monkeypatch.setattr(WebApp, "_new_job", spy("job folder", WebApp._new_job))
    return seen


@pytest.mark.parametrize("kind", ["too long", "too large", "too big"])
def test_over_the_limits_is_refused_before_any_decoding(server, http, media, tmp_path, decodes, kind):
    if kind == "too long":
        clip, message = make_h264_aac(tmp_path / "long.mp4", n=int(25 * (MAX_SECONDS + 1))), "The video lasts 4.0 s"
    elif kind == "too large":
        clip, message = make_large(tmp_path / "large.mp4"), "The video is 1296x720; this server takes up to"
    else:
        clip, message = make_padded(tmp_path / "big.mp4", media.h264_aac), "this server takes videos up to 1 MB"
    if kind == "too big":
        # Gradio refuses it at the upload (test_webui_e2e.py); vsrapp's own check must hold for a file that got
        # into the upload folder another way (a larger Gradio limit, a file left by an older server).
        from gradio.utils import get_upload_folder

        stored = Path(get_upload_folder()) / "elsewhere" / clip.name
        stored.parent.mkdir(parents=True, exist_ok=True)
        stored.write_bytes(clip.read_bytes())
        path = str(stored)
    else:
        path = upload(http, clip.name, clip.read_bytes())
    kind_of_event, data = call_upscale(http, path)
    assert kind_of_event == "error" and message in json.dumps(data), data
    assert decodes == []  # refused on the headers (or the file size): nothing decoded, no job started
    assert job_folders(server) == []


def test_within_the_limits_the_spy_sees_the_decode(server, http, media, decodes):
    """The spy above is live: an accepted clip is probed and upscaled through the spied functions."""
    kind, data = call_upscale(http, upload(http, "ok.mp4", media.odd_size.read_bytes()))
    assert kind == "complete", data
    assert decodes[:3] == ["first frame", "job folder", "job"]


# --- hostile file names -----------------------------------------------------------------------------------------
HOSTILE_NAMES = [
    "../../../../escape.mp4",
    "..\\..\\escape.mp4",
    "; rm -rf ~ ; $(touch pwned) `touch pwned2` | cat > pwned3 &.mp4",
    "quote' \"double\" \nnew\rline\ttab.mp4",
    "ünïcödé 视频 🎞\u202eexe.mp4",
    ".mp4",
]


@pytest.mark.parametrize("name", HOSTILE_NAMES, ids=range(len(HOSTILE_NAMES)))
def test_hostile_file_names_stay_names(server, http, media, name):
    data = media.odd_size.read_bytes()
    before = files_under(server.root.parent)
    path = upload(http, name, data)
    kind, result = call_upscale(http, path)
    assert kind == "complete", result
    video, status = result
    assert "Done: 10 frames" in status
    # The result downloads through the server's own URL, and is the x4 video.
    r = http.get(video["url"])
    assert r.status_code == 200
    got = server.root / "download.mp4"
    got.write_bytes(r.content)
    info = probe(got)
    assert (info.width, info.height) == (35 * 4, 27 * 4)
    got.unlink()
    # Everything the server wrote lies inside its own folders; nothing ran, nothing landed in its current folder.
    new = files_under(server.root.parent) - before
    assert new and all(server.gradio_dir in p.parents for p in new), sorted(map(str, new))
    assert list(server.cwd.iterdir()) == []
    assert not any(p.name.startswith("pwned") for p in files_under(server.root.parent))
    assert Path(video["path"]).resolve().is_relative_to(server.gradio_dir.resolve())
    assert job_folders(server) == []


# --- many visitors at once ----------------------------------------------------------------------------------------
def rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:  # Linux without psutil
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise


def test_visitors_queueing_at_once_keep_their_places_in_bounded_memory(server, media):
    """One slow job runs; six visitors (a client each) send a job while it runs. The test server takes four
    waiting jobs: those four run in the order they came, each seeing its place only ever move forward, and the
    last two are refused at once. At most one job folder exists at any time, memory does not grow with the
    queue, and nothing is left when the queue is empty."""
    from gradio_client import Client, handle_file
    from gradio_client.utils import Status

    clip = handle_file(str(media.h264_aac))
    clients = [Client(server.url, verbose=False, download_files=str(server.root / f"dl{i}")) for i in range(7)]
    try:
        rss_before = rss_mb()
        first = clients[0].submit(clip, "slow", "cpu", "auto", api_name="/upscale")
        deadline = time.monotonic() + 30
        while not job_folders(server) and time.monotonic() < deadline:  # the slow job has started
            time.sleep(0.05)
        waiting = []
        for c in clients[1:]:
            waiting.append(c.submit(clip, "bicubic", "cpu", "auto", api_name="/upscale"))
            time.sleep(0.2)  # a defined order of arrival
        jobs = [first, *waiting]
        ranks: list[list[int]] = [[] for _ in jobs]
        finished: list[int] = []
        most_folders, rss_peak = 0, rss_before
        deadline = time.monotonic() + 90
        while len(finished) < len(jobs) and time.monotonic() < deadline:
            for i, job in enumerate(jobs):
                if i in finished:
                    continue
                if job.done():
                    finished.append(i)
                    continue
                status = job.status()
                if status.code == Status.IN_QUEUE and status.rank is not None:
                    ranks[i].append(status.rank)
            most_folders = max(most_folders, len(job_folders(server)))
            rss_peak = max(rss_peak, rss_mb())
            time.sleep(0.05)
        outcomes = []
        for job in jobs:
            try:
                job.result(timeout=5)
                outcomes.append("ok")
            except Exception as exc:  # the refused ones
                outcomes.append(str(exc))
    finally:
        for c in clients:
            c.close()
    assert outcomes[:5] == ["ok"] * 5, outcomes
    assert all("queue is full" in o.lower() for o in outcomes[5:]), outcomes
    accepted = [i for i in finished if outcomes[i] == "ok"]
    assert accepted == [0, 1, 2, 3, 4]  # first come, first served
    for i in range(1, 5):
        seen = ranks[i]
        assert seen and seen == sorted(seen, reverse=True), (i, seen)  # a place only moves forward
        assert seen[0] <= i - 1  # never behind a later visitor
    assert most_folders <= 1  # one job at a time holds files
    assert job_folders(server) == []
    assert rss_peak - rss_before < 300, (rss_before, rss_peak)  # MB; a queue of five small jobs


# --- a visitor who goes away --------------------------------------------------------------------------------------
def test_a_visitor_who_disconnects_frees_the_worker_and_its_files(server, http, tmp_path):
    """The slow model takes SLOW_STEP per frame, so this job would hold the worker for 7.5 s; the visitor
    closes the connection once it has started. The job's folder goes, and the next visitor's job runs at once."""
    clip = make_h264_aac(tmp_path / "long.mp4", n=int(25 * MAX_SECONDS))
    whole_job = 25 * MAX_SECONDS * SLOW_STEP
    path = upload(http, "long.mp4", clip.read_bytes())
    file_data = {"path": path, "meta": {"_type": "gradio.FileData"}}
    r = http.post("gradio_api/call/upscale", json={"data": [file_data, "slow", "cpu", "auto"]})
    start = time.monotonic()
    with http.stream("GET", f"gradio_api/call/upscale/{r.json()['event_id']}") as events:
        for _ in events.iter_lines():
            if job_folders(server) or time.monotonic() - start > 30:
                break  # leaving the `with` closes the connection mid-job
    assert job_folders(server), "the job never started"
    started = time.monotonic()
    while job_folders(server) and time.monotonic() - started < whole_job:
        time.sleep(0.05)
    assert job_folders(server) == [], "the job's files outlived its visitor"
    with httpx.Client(base_url=server.url, timeout=60) as other:
        kind, data = call_upscale(other, upload(other, "next.mp4", make_h264_aac(tmp_path / "n.mp4", n=10)
                                                .read_bytes()))
    assert kind == "complete", data
    # Done before the abandoned job could have ended by itself: it was stopped, not left to run.
    assert time.monotonic() - started < whole_job
    assert job_folders(server) == []


def test_threads_do_not_pile_up(server):
    """After the abuse above, the server is back to its idle threads (no job thread left behind)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(t.name.startswith("vsrapp") for t in threading.enumerate()):
        time.sleep(0.1)
    assert not [t.name for t in threading.enumerate() if t.name.startswith("vsrapp")]
    assert os.getcwd() == str(server.cwd)
