"""The client against a manager, workers and a verifier running as separate
`inferix` processes over QUIC: a real job, tokens, and a dead manager."""

import pytest

import inferix
from conftest import SMALL, check_frames, start_manager


def test_job_on_separate_processes_over_quic(remote, scene, tmp_path):
    with inferix.Client(remote.addr, token=remote.key) as c:
        q = c.quote(scene, frames="1-4:1", **SMALL)
        assert (q.frames, q.tasks) == (4, 4)
        job = c.submit(scene, frames="1-4", **SMALL)
        kinds = [e.kind for e in job.events(timeout=180)]
        assert kinds.count("accepted") == 4 and kinds[-1] == "completed"
        files = job.download(tmp_path)
    check_frames(files, 4)


def test_another_connection_of_the_account_finds_the_job_but_another_account_does_not(
    remote, scene
):
    with inferix.Client(remote.addr, token=remote.key) as a:
        job = a.submit(scene, frames=1, **SMALL)
    with inferix.Client(remote.addr, token=remote.key) as again:
        assert again.job(job.id).wait(timeout=180).state == "completed"
    with inferix.Client(remote.addr, token=remote.other_key) as other:
        with pytest.raises(inferix.JobNotFound):
            other.job(job.id)


def test_an_account_without_funds_cannot_submit(remote, scene):
    with inferix.Client(remote.addr, token=remote.poor_key) as poor:
        assert poor.quote(scene, frames=1, **SMALL).total_price > 0
        with pytest.raises(inferix.QuoteError, match="inferix account deposit"):
            poor.submit(scene, frames=1, **SMALL)


@pytest.mark.parametrize("token", [None, "wrong", "ifx_0000000000000000_00000000000000000000000000000000"])
def test_missing_or_wrong_key_is_refused(remote, token):
    with pytest.raises(inferix.AuthenticationError, match="not admitted"):
        inferix.Client(remote.addr, token=token)


def test_unreachable_manager_raises_connection_error(tmp_path):
    manager, addr = start_manager(tmp_path / "gone")
    manager.stop()
    with pytest.raises(inferix.ConnectionError, match="cannot connect|no manager answered"):
        inferix.Client(addr, timeout=1.0)


def test_manager_going_away_mid_session_raises_connection_error(tmp_path, scene):
    manager, addr = start_manager(tmp_path / "m", "--guest-account", "guest")
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


def test_priority_pause_resume_and_claim(remote, scene):
    with inferix.Client(remote.addr, token=remote.key) as c:
        job = c.submit(scene, frames="1-2", priority=5, tags=[], **SMALL)
        job.pause()
        assert job.status().state == "paused"
        job.resume()
        assert job.status().state in ("active", "completed")
        assert job.wait(timeout=180).state == "completed"
        assert isinstance(job.claim([1], "looks wrong"), int)
        with pytest.raises(inferix.InferixError):
            job.claim([99])
    with pytest.raises(inferix.InvalidInput, match="tags"):
        with inferix.Client(remote.addr, token=remote.key) as c:
            c.quote(scene, frames=1, tags="gpu", **SMALL)
