"""The web page's upload and result cache is bounded by total size, oldest first, besides Gradio's age limit
(issue #20): the rule (vsrapp.web.guard.trim_cache), the app's use of it (WebApp.trim_cache, which spares the
input of a running job), and a running server that trims on its own."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import pytest
from webui_support import fast_models, free_port

from vsrapp.web.cli import add_serve_arguments, serve_kwargs
from vsrapp.web.guard import CACHE_GRACE_SECONDS, Limits, trim_cache

pytestmark = pytest.mark.timeout(300)
MB = 2**20


def cached_files(folder: Path, count: int, size: int = MB, age: float = 3600) -> list[str]:
    """``count`` files of ``size`` bytes, the first the oldest (``age`` seconds down to ``age - count``)."""
    folder.mkdir(parents=True, exist_ok=True)
    now = time.time()
    paths = []
    for i in range(count):
        path = folder / f"upload{i}.mp4"
        path.write_bytes(b"\0" * size)
        os.utime(path, (now - age + i, now - age + i))
        paths.append(str(path))
    return paths


def test_trim_deletes_the_oldest_until_the_total_fits(tmp_path):
    files = cached_files(tmp_path, 5)  # 5 MB
    removed = trim_cache(files, 2 * MB)
    assert removed == files[:3]  # oldest first, no more than needed
    assert [os.path.exists(f) for f in files] == [False, False, False, True, True]
    assert trim_cache(files, 2 * MB) == []  # within the bound: nothing more


def test_trim_spares_files_in_use_young_files_and_what_is_not_a_file(tmp_path):
    files = cached_files(tmp_path / "old", 3)
    young = cached_files(tmp_path / "young", 2, age=CACHE_GRACE_SECONDS / 2)
    link = tmp_path / "link.mp4"
    link.symlink_to(files[1])
    removed = trim_cache([*files, *young, str(link), str(tmp_path / "gone.mp4"), str(tmp_path)], 0,
                         keep={os.path.realpath(files[0])})
    assert removed == files[1:]  # the running job's input stays, so do the fresh uploads and the link
    assert os.path.exists(files[0]) and all(os.path.exists(f) for f in young) and link.is_symlink()


def test_the_limit_is_a_server_option():
    args = add_serve_arguments(argparse.ArgumentParser()).parse_args(["--cache-mb", "64"])
    assert serve_kwargs(args)["limits"].cache_mb == 64
    assert Limits().cache_mb == 2048 and "2048 MB" in Limits().describe()


@pytest.fixture
def gradio_env(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    monkeypatch.setenv("GRADIO_ANALYTICS_ENABLED", "False")
    return tmp_path


def test_the_app_bounds_the_files_gradio_cached_for_it_but_not_a_running_jobs_input(gradio_env):
    from vsrapp.web.ui import build_app

    demo = build_app(fast_models(), Limits(cache_mb=2), work_dir=gradio_env / "work", examples_dir=None)
    app = demo.vsrapp
    files = cached_files(gradio_env / "gradio" / "abc", 4)
    other = cached_files(gradio_env / "gradio" / "not-ours", 3)  # another app's files in the same folder
    demo.upload_file_set.update(files)  # what Gradio records for each upload and result it caches
    release = app._hold(files[0])  # a job reads the oldest upload: the trim it starts must spare it
    assert not os.path.exists(files[1]) and not os.path.exists(files[2])
    assert os.path.exists(files[0]) and os.path.exists(files[3])
    assert demo.upload_file_set == {files[0], files[3]}  # Gradio's record follows
    assert all(os.path.exists(f) for f in other)  # only what this app cached is its to delete
    release()
    assert app.trim_cache() == []  # 2 MB now: within the bound


def test_a_running_server_trims_its_cache_by_itself(gradio_env, monkeypatch):
    from vsrapp.web import ui

    monkeypatch.setattr(ui, "CACHE_TRIM_SECONDS", 0.2)
    demo = ui.build_app(fast_models(), Limits(cache_mb=1), work_dir=gradio_env / "work", examples_dir=None)
    ui.launch(demo, port=free_port(), prevent_thread_lock=True, quiet=True)
    try:
        files = cached_files(gradio_env / "gradio" / "flood", 3)  # uploads that never started a job
        demo.upload_file_set.update(files)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and sum(os.path.exists(f) for f in files) > 1:
            time.sleep(0.1)
        assert [os.path.exists(f) for f in files] == [False, False, True]  # before: kept for the hour
    finally:
        demo.close()
