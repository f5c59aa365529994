"""The client against a manager, workers and a verifier running as separate
`inferix` processes over QUIC: a real job, tokens, and a dead manager."""

import pytest

import inferix
from conftest import SMALL, check_frames, start_manager


def test_job_on_separate_processes_over_quic(remote, scene, tmp_path):
    with inferix.Client(remote, token="s3cret") as c:
        q = c.quote(scene, frames="1-4:1", **SMALL)
        assert (q.frames, q.tasks) == (4, 4)
        job = c.submit(scene, frames="1-4", **SMALL)
        kinds = [e.kind for e in job.events(timeout=180)]
        assert kinds.count("accepted") == 4 and kinds[-1] == "completed"
        files = job.download(tmp_path)
    check_frames(files, 4)


def test_another_client_finds_the_job_by_id(remote, scene):
    with inferix.Client(remote, token="s3cret") as a:
        job = a.submit(scene, frames=1, **SMALL)
    with inferix.Client(remote, token="s3cret") as b:
        assert b.job(job.id).wait(timeout=180).state == "completed"


@pytest.mark.parametrize("token", [None, "wrong"])
def test_missing_or_wrong_token_is_refused(remote, token):
    with pytest.raises(inferix.AuthenticationError, match="not admitted"):
        inferix.Client(remote, token=token)


def test_unreachable_manager_raises_connection_error(tmp_path):
    manager, addr = start_manager(tmp_path / "gone")
    manager.stop()
    with pytest.raises(inferix.ConnectionError, match="cannot connect|no manager answered"):
        inferix.Client(addr, timeout=1.0)


def test_manager_going_away_mid_session_raises_connection_error(tmp_path, scene):
    manager, addr = start_manager(tmp_path / "m")
    try:
        c = inferix.Client(addr)
        job = c.submit(scene, frames=1, **SMALL)
    finally:
        manager.stop()
    with pytest.raises(inferix.ConnectionError):
        job.status()
    with pytest.raises(inferix.ConnectionError):
        c.quote(scene, frames=1, **SMALL)
    c.close()
