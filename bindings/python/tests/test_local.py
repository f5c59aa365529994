"""A real job on an in-process LocalNetwork: quote, submit, events, wait,
download, cancel; the GIL is released while waiting."""

import threading
import time

import pytest

import inferix
from conftest import SMALL, check_frames


def test_quote_prices_every_frame_and_task(client, scene):
    q = client.quote(scene, frames="1-4", **SMALL)
    assert isinstance(q, inferix.Quote)
    assert (q.frames, q.tasks) == (4, 4)
    assert q.total_price > 0 and q.estimated_ibm > 0
    assert "total_price" in repr(q)


def test_submitted_job_reports_progress_and_delivers_frames(client, scene, tmp_path):
    job = client.submit(scene, frames=range(1, 4), **SMALL)
    assert job.quote is not None and job.quote.frames == 3
    events = list(job.events(timeout=120))
    accepted = [e for e in events if e.kind == "accepted"]
    assert [e.accepted_frames for e in accepted] == [1, 2, 3]
    assert all(e.total_frames == 3 and e.worker for e in accepted)
    assert events[-1].kind == "completed" and events[-1].is_final
    status = job.status()
    assert (status.state, status.frames_done, status.frames_total) == ("completed", 3, 3)
    assert status.finished and status.tasks.get("accepted") == 3
    files = job.download(tmp_path / "out")
    assert [f.name for f in files] == ["frame_0001.png", "frame_0002.png", "frame_0003.png"]
    check_frames(files, 3)


def test_wait_returns_the_final_status_and_jobs_are_found_by_id(client, scene):
    job = client.submit(scene, frames=(2, 3), **SMALL)
    status = job.wait(timeout=120)
    assert status.state == "completed" and status.frames_done == 2
    again = client.job(job.id)
    assert again.status().state == "completed"
    # A finished job's event stream reports its end at once.
    assert [e.kind for e in again.events(timeout=30)] == ["completed"]


def test_wait_releases_the_gil_times_out_and_cancel_ends_the_job(scene):
    # No workers: the job cannot progress, so wait() must time out.
    with inferix.LocalNetwork(workers=0, verifiers=0) as idle, idle.client() as c:
        job = c.submit(scene, frames=1, **SMALL)
        ticks = []
        stop = threading.Event()

        def tick():
            while not stop.is_set():
                ticks.append(time.monotonic())
                stop.wait(0.01)

        t = threading.Thread(target=tick)
        t.start()
        start = time.monotonic()
        with pytest.raises(inferix.Timeout, match="did not finish within 1.5 s"):
            job.wait(timeout=1.5)
        end = time.monotonic()
        stop.set()
        t.join()
        assert end - start >= 1.5
        during = [x for x in ticks if start + 0.2 < x < end - 0.2]
        assert len(during) > 20, "other Python threads must run while wait() blocks"

        events = job.events()
        job.cancel()
        kinds = [e.kind for e in events]
        assert kinds[-1] == "cancelled" and set(kinds[:-1]) <= {"waiting"}
        assert job.status().state == "cancelled"


def test_quic_local_network_is_reachable_by_url(scene, tmp_path):
    with inferix.LocalNetwork(workers=1, verifiers=1, transport="quic") as net:
        assert "@127.0.0.1:" in net.url
        with inferix.Client(net.url) as c:
            job = c.submit(scene, frames="1-2", **SMALL)
            assert job.wait(timeout=120).state == "completed"
            check_frames(job.download(tmp_path), 2)


def test_network_with_a_data_dir_keeps_its_database(scene, tmp_path):
    with inferix.LocalNetwork(workers=1, verifiers=1, data_dir=tmp_path / "data") as net:
        assert net.data_dir == str(tmp_path / "data")
        with net.client() as c:
            assert c.submit(scene, frames=1, **SMALL).wait(timeout=120).state == "completed"
    assert (tmp_path / "data" / "tasks.sqlite").is_file()


def test_ctrl_c_interrupts_a_blocking_wait(scene):
    import os
    import signal

    # A process started in the background by a shell without job control
    # inherits SIGINT as ignored, and Python then installs no handler: put
    # Python's own back for this test, as an interactive session has it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with inferix.LocalNetwork(workers=0, verifiers=0) as idle, idle.client() as c:
            job = c.submit(scene, frames=1, **SMALL)
            timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
            timer.start()
            start = time.monotonic()
            with pytest.raises(KeyboardInterrupt):
                job.wait(timeout=60)
            timer.join()
            assert time.monotonic() - start < 30
            # The client is still usable afterwards.
            assert job.status().state == "active"
    finally:
        signal.signal(signal.SIGINT, previous)