"""Every failure surfaces as a subclass of InferixError with a clear
message, and a Rust panic does not abort the interpreter."""

import pytest

import inferix
from conftest import SMALL


def test_hierarchy_matches_builtin_expectations():
    assert issubclass(inferix.InvalidInput, ValueError)
    assert issubclass(inferix.InvalidInput, TypeError)
    assert issubclass(inferix.SceneNotFound, FileNotFoundError)
    assert issubclass(inferix.ConnectionError, ConnectionError)
    assert issubclass(inferix.JobNotFound, LookupError)
    assert issubclass(inferix.Timeout, TimeoutError)
    for cls in (
        inferix.InvalidInput,
        inferix.SceneNotFound,
        inferix.ConnectionError,
        inferix.AuthenticationError,
        inferix.QuoteError,
        inferix.JobNotFound,
        inferix.Timeout,
        inferix.InternalError,
    ):
        assert issubclass(cls, inferix.InferixError)


def test_rust_panic_becomes_internal_error_and_the_process_goes_on(client, scene):
    with pytest.raises(inferix.InternalError, match=r"\(Rust panic\): deliberate panic"):
        inferix._inferix._panic_for_test()
    # The runtime survived: a real call still works.
    assert client.quote(scene, frames=1, **SMALL).frames == 1


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(frames=[1, 2]), "frames must be"),
        (dict(frames="five"), "frames \"five\""),
        (dict(frames="5-1"), "invalid job"),
        (dict(frames=range(3, 1)), "empty or negative range"),
        (dict(resolution="big"), "resolution must be a \\(width, height\\) pair"),
        (dict(resolution=(1, 2, 3)), "resolution must be a \\(width, height\\) pair"),
        (dict(resolution=(0, 10)), "invalid job"),
        (dict(samples=0), "invalid job"),
        (dict(samples=-1), "samples must be a positive int, got int -1"),
        (dict(samples=True), "samples must be a positive int, got bool"),
        (dict(samples="4"), "samples must be a positive int, got str"),
        (dict(fmt="jpg"), "fmt"),
        (dict(chunk=0), "invalid job"),
    ],
)
def test_bad_arguments_raise_invalid_input(client, scene, kwargs, message):
    with pytest.raises(inferix.InvalidInput, match=message):
        client.quote(scene, **kwargs)


def test_scene_must_be_an_existing_scene_file(client, tmp_path):
    with pytest.raises(inferix.InvalidInput, match="scene must be a path"):
        client.submit(42)
    with pytest.raises(inferix.SceneNotFound, match="scene file not found") as e:
        client.submit(tmp_path / "missing.glb")
    assert isinstance(e.value, FileNotFoundError)
    notes = tmp_path / "notes.txt"
    notes.write_text("not a scene")
    with pytest.raises(inferix.InvalidInput, match="cannot tell the scene format"):
        client.quote(notes)


def test_manager_refuses_to_price_a_broken_scene(client, tmp_path):
    broken = tmp_path / "broken.glb"
    broken.write_bytes(b"this is not glTF")
    with pytest.raises(inferix.QuoteError, match="quote failed"):
        client.quote(broken, frames=1, **SMALL)


def test_unknown_and_malformed_job_ids(client):
    with pytest.raises(inferix.JobNotFound, match="cannot read the job"):
        client.job("0" * 32)
    with pytest.raises(inferix.InvalidInput, match="job_id"):
        client.job("not-a-job")
    with pytest.raises(inferix.InvalidInput, match="job_id must be a str"):
        client.job(7)


def test_bad_timeouts_and_addresses():
    with pytest.raises(inferix.InvalidInput, match="must look like"):
        inferix.Client("localhost:7400")
    with pytest.raises(inferix.InvalidInput, match="url must be a str"):
        inferix.Client(7400)
    with pytest.raises(inferix.InvalidInput, match="timeout must be"):
        inferix.Client("a@127.0.0.1:1", timeout=-1)


def test_closed_client_raises_connection_error(net, scene):
    with net.client() as c:
        pass
    with pytest.raises(inferix.ConnectionError, match="client is closed"):
        c.quote(scene, frames=1, **SMALL)


def test_local_network_arguments_are_checked():
    with pytest.raises(inferix.InvalidInput, match="transport must be"):
        inferix.LocalNetwork(transport="pigeon")
    with pytest.raises(inferix.InvalidInput, match="quorum 2 needs at least"):
        inferix.LocalNetwork(workers=1, verifiers=1, quorum=2)
    with pytest.raises(inferix.InvalidInput, match="IB"):
        inferix.LocalNetwork(workers=1, ib=0.0)
    with pytest.raises(inferix.InvalidInput, match="workers must be a non-negative int, got int -1"):
        inferix.LocalNetwork(workers=-1)
    with pytest.raises(inferix.InvalidInput, match="verifiers must be a non-negative int, got str"):
        inferix.LocalNetwork(verifiers="2")
    with pytest.raises(inferix.InvalidInput, match="transport must be"):
        inferix.LocalNetwork(transport=3)


def test_shut_down_network_refuses_new_clients():
    net = inferix.LocalNetwork(workers=0, verifiers=0)
    net.shutdown()
    net.shutdown()  # idempotent
    with pytest.raises(inferix.ConnectionError, match="shut down"):
        net.client()
