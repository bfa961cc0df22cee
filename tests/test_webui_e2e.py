"""End to end through HTTP: the app launched on localhost, driven by gradio_client as an API user would."""

from __future__ import annotations

import av
import pytest
from webui_support import MAX_SECONDS, MAX_UPLOAD_MB, running_server

from vsrapp.video import probe

pytestmark = pytest.mark.timeout(300)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp, running_server(tmp_path_factory.mktemp("webui"), mp) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(server):
    from gradio_client import Client

    c = Client(server.url, verbose=False, download_files=str(server.gradio_dir.parent / "downloads"))
    yield c
    c.close()


def _upscale(client, path, model="bicubic"):
    from gradio_client import handle_file

    return client.predict(handle_file(str(path)), model, "cpu", "auto", api_name="/upscale")


def test_upscale_returns_full_file_with_audio(client, server, media):
    src = media.h264_aac
    out, status = _upscale(client, src)
    info_in, info_out = probe(src), probe(out)
    assert (info_out.width, info_out.height) == (4 * info_in.width, 4 * info_in.height) == (256, 192)
    with av.open(out) as c:  # count by decoding, not from the header
        frames = sum(1 for _ in c.decode(video=0))
    assert frames == info_in.frame_count == 50
    assert info_out.duration == pytest.approx(info_in.duration, abs=1 / 25)
    assert [a.codec for a in info_out.audio] == ["aac"]
    assert "Done: 50 frames" in status and "audio kept: aac" in status
    # Nothing is left in the job folder once Gradio has its copy.
    assert list(server.work_dir.iterdir()) == []


def test_model_choice_is_respected_and_speed_recorded(client, server, media):
    out, status = _upscale(client, media.odd_size, model="tiny-basicvsr")
    assert "tiny-basicvsr" in status
    info = probe(out)
    assert (info.width, info.height) == (35 * 4, 27 * 4)
    menu = server.demo.vsrapp.menu
    assert any(name == "tiny-basicvsr" for name, _ in menu.speed)
    assert "measured on this server" in menu.info("tiny-basicvsr")


def test_not_a_video_is_refused(client, media):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="This is not a video this server can read"):
        _upscale(client, media.not_video)


def test_audio_only_is_refused(client, media):
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="This is not a video this server can read: .*no video stream"):
        _upscale(client, media.audio_only)


def test_too_long_is_refused(client, tmp_path):
    from media import make_h264_aac

    long_clip = make_h264_aac(tmp_path / "long.mp4", n=int(25 * (MAX_SECONDS + 1)))
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=r"The video lasts 4\.0 s; this server takes videos up to 3 s"):
        _upscale(client, long_clip)


def test_too_big_is_refused_at_upload(client, tmp_path):
    big = tmp_path / "big.mp4"
    big.write_bytes(b"\0" * int(MAX_UPLOAD_MB * 1.5 * 2**20))
    with pytest.raises(Exception, match="exceeds the maximum file size"):
        _upscale(client, big)


def test_unknown_model_is_refused(client, media):
    from gradio_client.exceptions import AppError

    # Gradio's dropdown refuses it first; the model menu would too (tested in test_webui_units.py).
    with pytest.raises(AppError, match="not in the list of choices|Unknown model"):
        _upscale(client, media.h264_aac, model="../../etc/passwd")


def test_compare_endpoint(client, media):
    from gradio_client import handle_file

    pair, caption = client.predict(handle_file(str(media.h264_aac)), "tiny-basicvsr", "cpu", "auto", 1.0,
                                   api_name="/compare")
    assert "Frame 25" in caption
    assert len(pair) == 2



def test_too_big_is_refused_by_the_server_too(server):
    """A client that skips the size check (the browser and gradio_client both check first) meets the server's."""
    import httpx

    payload = b"\0" * int(MAX_UPLOAD_MB * 1.5 * 2**20)
    r = httpx.post(f"{server.url}gradio_api/upload", files={"files": ("big.mp4", payload, "video/mp4")},
                   timeout=60)
    assert r.status_code == 413, r.text


def test_one_job_at_a_time_with_a_capped_queue(client, media):
    """One job runs; the next ones wait with their position in the queue; past the cap they are refused."""
    import time

    from gradio_client import handle_file
    from gradio_client.utils import Status

    clip = handle_file(str(media.h264_aac))
    first = client.submit(clip, "slow", "cpu", "auto", api_name="/upscale")  # 50 frames x SLOW_STEP
    time.sleep(0.5)
    waiting = [client.submit(clip, "bicubic", "cpu", "auto", api_name="/upscale") for _ in range(6)]
    ranks = set()
    deadline = time.monotonic() + 60
    while not first.done() and time.monotonic() < deadline:
        ranks |= {s.rank for s in (j.status() for j in waiting) if s.code == Status.IN_QUEUE and s.rank is not None}
        time.sleep(0.05)
    outcomes = []
    for job in [first, *waiting]:
        try:
            job.result(timeout=120)
            outcomes.append("ok")
        except Exception as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == "ok"
    refused = [o for o in outcomes if o != "ok"]
    # The test server takes 4 waiting jobs: of the 6 sent while the first ran, 2 are refused.
    assert len(refused) == 2 and all("queue is full" in o.lower() for o in refused), outcomes
    assert {0, 1, 2, 3} <= ranks  # each waiting job saw its place in the line


@pytest.mark.parametrize("path", ["/etc/hostname", "../../../../etc/hostname"])
def test_server_paths_cannot_be_read(server, path):
    """An API caller naming a file on the server (instead of uploading one) gets an error, never the file."""
    import httpx

    file_data = {"path": path, "meta": {"_type": "gradio.FileData"}}
    with httpx.Client(base_url=server.url, timeout=60) as http:
        r = http.post("gradio_api/call/upscale", json={"data": [file_data, "bicubic", "cpu", "auto"]})
        if r.status_code == 200:
            events = http.get(f"gradio_api/call/upscale/{r.json()['event_id']}").text
            assert "event: error" in events and "event: complete" not in events, events
        else:
            assert r.status_code in (400, 403, 422), r.text
    assert list(server.work_dir.iterdir()) == []
