"""The manager's HTTP API from Python's standard library alone (urllib),
against separate `inferix` processes: upload, submit, follow the event
stream to completion, download the frames; another account and a made-up
key are refused."""

import json
import urllib.error
import urllib.request

import pytest

from conftest import check_frames


def call(remote, method, path, key, body=None, raw=None, timeout=60):
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    headers = {"Authorization": f"Bearer {key}"}
    headers["Content-Type"] = "application/octet-stream" if raw is not None else "application/json"
    req = urllib.request.Request(remote.http + path, data=data, method=method, headers=headers)
    return urllib.request.urlopen(req, timeout=timeout)


def test_a_job_through_the_http_api_with_urllib(remote, scene, tmp_path):
    with call(remote, "POST", "/api/scenes?name=demo.glb", remote.key, raw=scene.read_bytes()) as r:
        assert r.status == 201
        scene_hash = json.load(r)["hash"]
    request = {
        "scene": scene_hash, "scene_name": "demo.glb", "frames": "1-2",
        "width": 64, "height": 36, "samples": 2, "chunk": 1,
    }
    with call(remote, "POST", "/api/jobs", remote.key, body=request) as r:
        assert r.status == 201
        job = json.load(r)["job"]

    # The event stream ends with the job.
    names = []
    with call(remote, "GET", f"/api/jobs/{job}/events", remote.key, timeout=300) as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        for line in r:
            line = line.decode().strip()
            if line.startswith("event: "):
                names.append(line[len("event: "):])
    assert names.count("task_accepted") == 2 and names[-1] == "completed", names

    with call(remote, "GET", f"/api/jobs/{job}", remote.key) as r:
        status = json.load(r)
    assert status["state"] == "completed" and status["frames_accepted"] == 2
    files = []
    for f in status["frames"]:
        with call(remote, "GET", f["url"], remote.key) as r:
            path = tmp_path / f"frame_{f['frame']:04}.png"
            path.write_bytes(r.read())
            files.append(path)
    check_frames(files, 2)

    # Another account is told the job does not exist; a made-up key is 401.
    for key, code in [(remote.other_key, 404), ("ifx_0000000000000000_00000000000000000000000000000000", 401)]:
        with pytest.raises(urllib.error.HTTPError) as e:
            call(remote, "GET", f"/api/jobs/{job}", key)
        assert e.value.code == code
        assert "error" in json.load(e.value)


def test_an_account_without_funds_gets_402_over_http(remote, scene):
    with call(remote, "POST", "/api/scenes?name=demo.glb", remote.poor_key, raw=scene.read_bytes()) as r:
        scene_hash = json.load(r)["hash"]
    request = {"scene": scene_hash, "scene_name": "demo.glb", "frames": "1"}
    with pytest.raises(urllib.error.HTTPError) as e:
        call(remote, "POST", "/api/jobs", remote.poor_key, body=request)
    assert e.value.code == 402
    assert json.load(e.value)["error"]["code"] == "payment_required"
