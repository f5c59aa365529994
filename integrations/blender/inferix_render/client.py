"""The Inferix HTTP API as the add-on uses it, and the job that follows a
render to its last frame. Standard library only, and no `bpy`: it runs
(and is tested) with a plain `python3` as well as inside Blender.

Every failure a user can meet (a wrong address, a refused key, a refused
job, a manager that went away) is an `InferixError` whose message is
meant to be shown as it is.
"""

import json
import os
import socket
import subprocess
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_TIMEOUT = 60.0
# Consecutive failed polls (the manager restarting, a network hiccup) that
# a running job survives before it is given up.
POLL_FAILURES_ALLOWED = 10
POLL_INTERVAL = 1.0


class InferixError(Exception):
    """A failure with a message for people."""

    def __init__(self, message, status=None, code=None):
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code

    def __str__(self):
        return self.message


def _check_base_url(url):
    text = (url or "").strip()
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InferixError(
            "Manager URL %r is not an http:// or https:// address "
            "(set it in the add-on preferences, e.g. http://127.0.0.1:8080)" % text
        )
    return text.rstrip("/")


def _error_message(body):
    """The `message` of the API's JSON error body, or the body's text."""
    try:
        doc = json.loads(body.decode("utf-8"))
        detail = doc["error"]
        return str(detail.get("message") or detail.get("code")), detail.get("code")
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
        text = body.decode("utf-8", "replace").strip()
        return (text[:200] or "no explanation"), None


class Api:
    """A manager's HTTP API, authenticated by an account's API key."""

    def __init__(self, url, key, timeout=DEFAULT_TIMEOUT):
        self.base = _check_base_url(url)
        self.key = (key or "").strip()
        if not self.key:
            raise InferixError(
                "No API key: set one in the add-on preferences "
                "(inferix account create NAME prints one)"
            )
        self.timeout = timeout

    def _request(self, method, path, data=None, headers=None):
        request = urllib.request.Request(self.base + path, data=data, method=method)
        request.add_header("Authorization", "Bearer " + self.key)
        request.add_header("Accept", "application/json")
        for name, value in (headers or {}).items():
            request.add_header(name, value)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as e:
            body = e.read() if e.fp is not None else b""
            message, code = _error_message(body)
            raise self._http_error(e.code, code, message) from None
        except urllib.error.URLError as e:
            reason = e.reason
            if isinstance(reason, (socket.timeout, TimeoutError)):
                raise self._timeout() from None
            raise InferixError(
                "Cannot reach the Inferix manager at %s: %s" % (self.base, reason)
            ) from None
        except (socket.timeout, TimeoutError):
            raise self._timeout() from None
        except (ConnectionError, OSError) as e:
            raise InferixError(
                "Lost the connection to the Inferix manager at %s: %s" % (self.base, e)
            ) from None
        except ValueError as e:
            raise InferixError("Manager URL %s is not usable: %s" % (self.base, e)) from None

    def _timeout(self):
        return InferixError(
            "The Inferix manager at %s did not answer within %d s"
            % (self.base, self.timeout)
        )

    def _http_error(self, status, code, message):
        if status == 401:
            text = (
                "The manager refused the API key (401 unauthorized: %s); "
                "check the key in the add-on preferences" % message
            )
        elif status == 402:
            text = "Job refused: the account cannot pay for it (402: %s)" % message
        elif status == 429:
            text = "Job refused: over the account's quota (429: %s)" % message
        elif status == 400:
            text = "Job refused as invalid (400: %s)" % message
        elif status == 404:
            text = "Not found on the manager (404: %s)" % message
        else:
            text = "The manager answered %d: %s" % (status, message)
        return InferixError(text, status=status, code=code)

    def _json(self, method, path, doc=None):
        data = None
        headers = {}
        if doc is not None:
            data = json.dumps(doc).encode("utf-8")
            headers["Content-Type"] = "application/json"
        _, body = self._request(method, path, data, headers)
        try:
            return json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise InferixError(
                "%s does not answer like an Inferix manager (%s %s gave no JSON)"
                % (self.base, method, path)
            ) from None

    def check(self):
        """Checks the address and the key (lists the account's jobs)."""
        jobs = self._json("GET", "/api/jobs")
        if not isinstance(jobs, list):
            raise InferixError("%s does not answer like an Inferix manager" % self.base)

    def upload_scene(self, path, name):
        """Uploads the file at `path` (streamed); returns its hash."""
        size = os.path.getsize(path)
        query = urllib.parse.urlencode({"name": name})
        with open(path, "rb") as f:
            _, body = self._request(
                "POST",
                "/api/scenes?" + query,
                data=f,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(size),
                },
            )
        try:
            return json.loads(body.decode("utf-8"))["hash"]
        except (ValueError, KeyError, TypeError, UnicodeDecodeError):
            raise InferixError("The manager's answer to the upload has no hash") from None

    def submit(self, request):
        """Submits a job request; returns (job id, quote)."""
        doc = self._json("POST", "/api/jobs", request)
        return doc["job"], doc.get("quote", {})

    def status(self, job):
        return self._json("GET", "/api/jobs/%s" % urllib.parse.quote(job))

    def frame(self, job, frame):
        """The bytes of an accepted frame."""
        _, body = self._request(
            "GET", "/api/jobs/%s/frames/%d" % (urllib.parse.quote(job), frame)
        )
        return body

    def cancel(self, job):
        return self._json("POST", "/api/jobs/%s/cancel" % urllib.parse.quote(job), {})


def frames_text(start, end, step=1):
    """A frame range as a job request writes it: `N`, `A-B` or `A-B:STEP`."""
    if end < start:
        raise InferixError("The frame range %d-%d ends before it starts" % (start, end))
    if start == end:
        return str(start)
    if step > 1:
        return "%d-%d:%d" % (start, end, step)
    return "%d-%d" % (start, end)


def frame_numbers(start, end, step=1):
    return list(range(start, end + 1, max(step, 1)))


def scaled_size(width, height, percentage):
    """Pixels at a resolution percentage, rounded as Blender does."""
    w, h = width * percentage // 100, height * percentage // 100
    if w < 1 or h < 1:
        raise InferixError("%d%% of %d×%d is no pixels" % (percentage, width, height))
    return w, h


IMAGE_EXTENSIONS = (
    ".png", ".exr", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".tga",
    ".jp2", ".j2c", ".dpx", ".cin", ".hdr", ".rgb", ".webp",
)


def delivered_path(blender_path, extension):
    """Blender's frame path, with the extension of the delivered format
    (`.png` or `.exr`) when the scene's output format is another."""
    base, ext = os.path.splitext(blender_path)
    if ext.lower() == extension:
        return blender_path
    if ext.lower() in IMAGE_EXTENSIONS:
        return base + extension
    return blender_path + extension


def job_request(scene_hash, scene_name, frames, width, height, samples,
                priority=0, chunk=5, output="png"):
    return {
        "scene": scene_hash,
        "scene_name": scene_name,
        "frames": frames,
        "width": int(width),
        "height": int(height),
        "samples": int(samples),
        "chunk": int(chunk),
        "format": output,
        "priority": int(priority),
        "tags": [],
    }


def pack_command(blender, source, target, script):
    """The Blender run that packs `source`'s external files into a
    self-contained copy at `target`."""
    return [
        blender, "-b", "--factory-startup", "--disable-autoexec", source,
        "--python-exit-code", "2", "--python", script, "--", target,
    ]


def pack_scene(blender, source, target, script, timeout=900):
    """Runs `pack_command`; raises with what Blender said when it fails."""
    try:
        done = subprocess.run(
            pack_command(blender, source, target, script),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            timeout=timeout, check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise InferixError("Packing the scene failed: %s" % e) from None
    out = done.stdout.decode("utf-8", "replace")
    unpacked = [
        line.split("INFERIX-UNPACKED ", 1)[1].strip()
        for line in out.splitlines()
        if line.startswith("INFERIX-UNPACKED ")
    ]
    if unpacked:
        raise InferixError(
            "Cannot pack these external files into the scene: %s" % "; ".join(unpacked)
        )
    if done.returncode != 0 or not os.path.isfile(target):
        tail = " ".join(out.strip().splitlines()[-3:])
        raise InferixError(
            "Packing the scene failed (Blender exit %d): %s" % (done.returncode, tail)
        )


def write_atomically(path, data):
    folder = os.path.dirname(path)
    if folder:
        os.makedirs(folder, exist_ok=True)
    part = path + ".part"
    with open(part, "wb") as f:
        f.write(data)
    os.replace(part, path)


class RenderJob:
    """A submitted job, followed by `poll()` until its frames are saved.

    `paths` maps each frame number to the file it is saved to. `poll()`
    asks the manager once, saves frames accepted since, and returns the
    seconds until the next poll, or None once the job is over (`state`
    then says how: `done`, `failed` or `cancelled`, with `message`).
    """

    def __init__(self, api, job, paths, interval=POLL_INTERVAL):
        self.api = api
        self.job = job
        self.paths = dict(paths)
        self.interval = interval
        self.saved = set()
        self.accepted = 0
        self.state = "rendering"
        self.message = "Submitted job %s" % job
        self.failures = 0

    @property
    def total(self):
        return len(self.paths)

    @property
    def finished(self):
        return self.state in ("done", "failed", "cancelled")

    def _end(self, state, message):
        self.state = state
        self.message = message
        return None

    def poll(self):
        if self.finished:
            return None
        try:
            status = self.api.status(self.job)
            self._save_new(status)
        except InferixError as e:
            if e.status is not None and e.status < 500:
                return self._end("failed", str(e))
            self.failures += 1
            if self.failures > POLL_FAILURES_ALLOWED:
                return self._end("failed", "Gave up on job %s: %s" % (self.job, e))
            self.message = "Retrying (%d): %s" % (self.failures, e)
            return self.interval * min(self.failures, 5)
        except OSError as e:
            return self._end("failed", "Cannot save a frame: %s" % e)
        self.failures = 0
        state = status.get("state")
        self.accepted = int(status.get("frames_accepted", 0))
        if state == "completed":
            missing = sorted(set(self.paths) - self.saved)
            if missing:
                return self._end(
                    "failed", "Job %s completed without frames %s" % (self.job, missing)
                )
            return self._end("done", "Done: %d frames saved" % len(self.saved))
        if state == "failed":
            why = status.get("waiting_reason") or "no reason given"
            return self._end("failed", "Job %s failed: %s" % (self.job, why))
        if state == "cancelled":
            return self._end("cancelled", "Job %s was cancelled" % self.job)
        tasks = status.get("tasks") or {}
        busy = ", ".join(
            "%d %s" % (n, name)
            for name, n in sorted(tasks.items())
            if n and name not in ("accepted", "cancelled")
        )
        waiting = status.get("waiting_reason")
        self.message = "%s: %d of %d frames rendered, %d saved%s%s" % (
            "Paused" if state == "paused" else "Rendering",
            self.accepted, self.total, len(self.saved),
            " (tasks: %s)" % busy if busy else "",
            "; waiting: %s" % waiting if waiting else "",
        )
        return self.interval

    def _save_new(self, status):
        for f in status.get("frames", []):
            frame = int(f["frame"])
            if frame in self.saved or frame not in self.paths:
                continue
            write_atomically(self.paths[frame], self.api.frame(self.job, frame))
            self.saved.add(frame)

    def cancel(self):
        if self.finished:
            return
        self.api.cancel(self.job)
        self._end("cancelled", "Job %s was cancelled" % self.job)
