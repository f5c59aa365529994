"""Tests of the add-on's HTTP client with a plain python3 (no Blender):
`python3 -m unittest discover -s integrations/blender/tests`."""

import http.server
import json
import os
import socket
import sys
import tempfile
import threading
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "inferix_render"))
import client  # noqa: E402


class FakeManager(http.server.BaseHTTPRequestHandler):
    """Answers like a manager whose only key is `good`."""

    uploads = []

    def log_message(self, *args):
        pass

    def _answer(self, status, doc):
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _authorized(self):
        if self.headers.get("Authorization") != "Bearer good":
            self._answer(401, {"error": {"code": "unauthorized", "message": "bad key"}})
            return False
        return True

    def do_GET(self):
        if self._authorized():
            self._answer(200, [])

    def do_POST(self):
        if not self._authorized():
            return
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path.startswith("/api/scenes?name=shot.blend"):
            FakeManager.uploads.append(body)
            self._answer(201, {"hash": "h" * 64, "size": len(body)})
        elif self.path == "/api/jobs":
            self._answer(402, {"error": {"code": "payment_required", "message": "deposit"}})
        else:
            self._answer(404, {"error": {"code": "not_found", "message": self.path}})


class ApiTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), FakeManager)
        cls.url = "http://127.0.0.1:%d" % cls.server.server_address[1]
        threading.Thread(target=cls.server.serve_forever, daemon=True).start()

    @classmethod
    def tearDownClass(cls):
        cls.server.shutdown()
        cls.server.server_close()

    def test_a_good_key_passes_and_uploads_stream_the_file(self):
        api = client.Api(self.url + "/", "good")
        api.check()
        with tempfile.NamedTemporaryFile(suffix=".blend") as f:
            f.write(b"BLENDER" * 1000)
            f.flush()
            self.assertEqual(api.upload_scene(f.name, "shot.blend"), "h" * 64)
        self.assertEqual(FakeManager.uploads[-1], b"BLENDER" * 1000)

    def test_a_wrong_key_is_a_401_message(self):
        with self.assertRaises(client.InferixError) as e:
            client.Api(self.url, "wrong").check()
        self.assertEqual(e.exception.status, 401)
        self.assertIn("refused the API key", str(e.exception))
        self.assertIn("bad key", str(e.exception))

    def test_a_refused_job_says_why(self):
        with self.assertRaises(client.InferixError) as e:
            client.Api(self.url, "good").submit({})
        self.assertEqual(e.exception.status, 402)
        self.assertIn("deposit", str(e.exception))

    def test_bad_addresses_and_missing_keys(self):
        for url in ("", "manager:8080", "ftp://x", "http://"):
            with self.assertRaises(client.InferixError) as e:
                client.Api(url, "good")
            self.assertIn("not an http", str(e.exception))
        with self.assertRaises(client.InferixError) as e:
            client.Api(self.url, "  ")
        self.assertIn("No API key", str(e.exception))

    def test_a_closed_port_cannot_be_reached(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        with self.assertRaises(client.InferixError) as e:
            client.Api("http://127.0.0.1:%d" % port, "good").check()
        self.assertIsNone(e.exception.status)
        self.assertIn("Cannot reach", str(e.exception))


class HelpersTest(unittest.TestCase):
    def test_frames(self):
        self.assertEqual(client.frames_text(5, 7), "5-7")
        self.assertEqual(client.frames_text(4, 4), "4")
        self.assertEqual(client.frames_text(1, 9, 2), "1-9:2")
        self.assertEqual(client.frame_numbers(1, 9, 4), [1, 5, 9])
        with self.assertRaises(client.InferixError):
            client.frames_text(7, 5)

    def test_sizes_round_down_like_blender(self):
        self.assertEqual(client.scaled_size(1920, 1080, 50), (960, 540))
        self.assertEqual(client.scaled_size(101, 51, 50), (50, 25))
        with self.assertRaises(client.InferixError):
            client.scaled_size(1, 1, 50)

    def test_delivered_paths_get_the_delivered_extension(self):
        self.assertEqual(client.delivered_path("/o/f_0005.png", ".png"), "/o/f_0005.png")
        self.assertEqual(client.delivered_path("/o/f_0005.jpg", ".png"), "/o/f_0005.png")
        self.assertEqual(client.delivered_path("/o/f_0005", ".exr"), "/o/f_0005.exr")


class FakeApi:
    """Replays status documents; frames are their numbers as bytes."""

    def __init__(self, statuses):
        self.statuses = list(statuses)

    def status(self, job):
        s = self.statuses.pop(0)
        if isinstance(s, Exception):
            raise s
        return s

    def frame(self, job, frame):
        return b"frame %d" % frame


def status(state, frames, tasks=None):
    return {
        "state": state,
        "frames_accepted": len(frames),
        "frames": [{"frame": f} for f in frames],
        "tasks": tasks or {},
    }


class RenderJobTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.TemporaryDirectory()
        self.paths = {n: os.path.join(self.dir.name, "out", "f_%04d.png" % n) for n in (5, 6, 7)}

    def tearDown(self):
        self.dir.cleanup()

    def test_frames_are_saved_as_they_are_accepted(self):
        down = client.InferixError("Cannot reach the Inferix manager")
        api = FakeApi([
            status("active", [], {"queued": 2, "leased": 1}),
            status("active", [5]),
            down,
            status("completed", [5, 6, 7]),
        ])
        job = client.RenderJob(api, "j1", self.paths, interval=0.5)
        self.assertEqual(job.poll(), 0.5)
        self.assertIn("0 of 3 frames rendered", job.message)
        self.assertIn("1 leased, 2 queued", job.message)
        self.assertEqual(job.poll(), 0.5)
        self.assertEqual(os.listdir(os.path.dirname(self.paths[5])), ["f_0005.png"])
        self.assertEqual(job.poll(), 0.5, "a lost connection is retried")
        self.assertIn("Retrying", job.message)
        self.assertIsNone(job.poll())
        self.assertEqual(job.state, "done")
        for n, path in self.paths.items():
            with open(path, "rb") as f:
                self.assertEqual(f.read(), b"frame %d" % n)

    def test_a_failed_job_or_a_refusal_ends_it(self):
        job = client.RenderJob(FakeApi([status("failed", [])]), "j2", self.paths)
        self.assertIsNone(job.poll())
        self.assertEqual(job.state, "failed")
        gone = client.InferixError("Not found", status=404)
        job = client.RenderJob(FakeApi([gone]), "j3", self.paths)
        self.assertIsNone(job.poll())
        self.assertEqual((job.state, job.message), ("failed", "Not found"))

    def test_a_manager_that_stays_away_is_given_up(self):
        down = client.InferixError("Cannot reach the Inferix manager")
        api = FakeApi([down] * (client.POLL_FAILURES_ALLOWED + 1))
        job = client.RenderJob(api, "j4", self.paths, interval=0.0)
        while job.poll() is not None:
            pass
        self.assertEqual(job.state, "failed")
        self.assertIn("Gave up", job.message)


if __name__ == "__main__":
    unittest.main()
