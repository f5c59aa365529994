"""Render the open scene on an Inferix network.

A panel in Output Properties sends the open scene to an Inferix manager's
HTTP API and saves the rendered frames where Blender would have written
them (`scene.render.frame_path`). The scene is packed in a copy: the open
file and session are never changed.

Scripts and headless runs call `bpy.ops.inferix.render()` and then
`wait()`, which drives the same `poll()` the panel's timer calls until the
job is over.
"""

bl_info = {
    "name": "Inferix Render",
    "author": "Inferix contributors",
    "version": (0, 1, 0),
    "blender": (3, 4, 0),
    "location": "Properties > Output > Inferix",
    "description": "Render the open scene on an Inferix render network",
    "category": "Render",
}

import os
import shutil
import tempfile
import textwrap
import time

import bpy
from bpy.props import BoolProperty, IntProperty, PointerProperty, StringProperty

from . import client

ADDON = __package__ or __name__
PACK_SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "pack_scene.py")


class Progress:
    """The add-on's one job and what the panel shows about it."""

    job = None  # client.RenderJob while one runs or after it ended
    message = ""
    error = False


def _set_status(message, error=False):
    if (message, error) == (Progress.message, Progress.error):
        return
    Progress.message = message
    Progress.error = error
    print("Inferix: %s" % message)
    _redraw()


def _redraw():
    wm = getattr(bpy.context, "window_manager", None)
    for window in getattr(wm, "windows", []):
        for area in window.screen.areas:
            if area.type == "PROPERTIES":
                area.tag_redraw()


def poll():
    """One step of the running job: asks the manager, saves new frames.
    Returns seconds until the next step, or None when there is no job or
    it is over. This is what the timer runs; it never raises."""
    job = Progress.job
    if job is None or job.finished:
        return None
    try:
        delay = job.poll()
    except Exception as e:  # a bug must not kill the timer with a traceback
        job.state, job.message = "failed", "Unexpected error: %s" % e
        delay = None
    _set_status(job.message, error=job.state == "failed")
    return delay


def wait():
    """Drives `poll()` until the job is over (scripts, `blender -b`);
    returns the job's final state."""
    while True:
        delay = poll()
        if delay is None:
            return Progress.job.state if Progress.job else None
        time.sleep(delay)


def _timer():
    return poll()


def _prefs(context):
    return context.preferences.addons[ADDON].preferences


def _scene_samples(scene):
    cycles = getattr(scene, "cycles", None)
    return int(getattr(cycles, "samples", 64))


def _copy_scene_frames(settings, context):
    if not settings.use_scene_frames:
        scene = context.scene
        settings.frame_start = scene.frame_start
        settings.frame_end = scene.frame_end


class InferixPreferences(bpy.types.AddonPreferences):
    bl_idname = ADDON

    url: StringProperty(
        name="Manager URL",
        description="Address of the manager's HTTP API (inferix manager --http)",
        default="http://127.0.0.1:8080",
    )
    api_key: StringProperty(
        name="API key",
        description="An API key of your account (inferix account create NAME)",
        subtype="PASSWORD",
    )

    def draw(self, context):
        self.layout.prop(self, "url")
        self.layout.prop(self, "api_key")


class InferixSettings(bpy.types.PropertyGroup):
    use_scene_frames: BoolProperty(
        name="Scene Frame Range",
        description="Render the scene's frame range",
        default=True,
        update=_copy_scene_frames,
    )
    frame_start: IntProperty(name="Start", default=1, min=0)
    frame_end: IntProperty(name="End", default=250, min=0)
    resolution_percentage: IntProperty(
        name="Resolution %",
        description="Percentage of the scene's resolution to render at",
        default=100, min=1, max=1000, soft_max=100, subtype="PERCENTAGE",
    )
    # Off by default: the network renders without adaptive sampling, so a
    # scene's (often 4096) maximum would be rendered in full.
    use_scene_samples: BoolProperty(
        name="Scene Samples",
        description="Render with the scene's Cycles samples (all of them: "
        "the network renders without adaptive sampling)",
        default=False,
    )
    samples: IntProperty(name="Samples", default=128, min=1, soft_max=4096)
    priority: IntProperty(
        name="Priority", description="Higher runs first", default=0, min=-100, max=100
    )
    chunk: IntProperty(
        name="Frames per Task", description="Frames each worker renders in one go",
        default=5, min=1, soft_max=50,
    )


def _frames(scene, settings):
    if settings.use_scene_frames:
        return scene.frame_start, scene.frame_end, scene.frame_step
    return settings.frame_start, settings.frame_end, scene.frame_step


def _samples(scene, settings):
    if settings.use_scene_samples:
        return _scene_samples(scene)
    return settings.samples


def _output_format(scene):
    if scene.render.image_settings.file_format.startswith("OPEN_EXR"):
        return "exr"
    return "png"


class INFERIX_OT_render(bpy.types.Operator):
    """Pack the open scene into a copy, send it to the Inferix network and
    save the rendered frames to the output path"""

    bl_idname = "inferix.render"
    bl_label = "Render on Inferix"

    def execute(self, context):
        if Progress.job is not None and not Progress.job.finished:
            self.report({"ERROR"}, "An Inferix job is still running; cancel it first")
            return {"CANCELLED"}
        try:
            job = self._submit(context)
        except client.InferixError as e:
            _set_status(str(e), error=True)
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        except Exception as e:  # shown, not a traceback
            _set_status("Unexpected error: %s" % e, error=True)
            self.report({"ERROR"}, "Unexpected error: %s" % e)
            return {"CANCELLED"}
        Progress.job = job
        _set_status(job.message)
        if not bpy.app.background:
            bpy.app.timers.register(_timer, first_interval=job.interval, persistent=True)
        self.report({"INFO"}, job.message)
        return {"FINISHED"}

    def _submit(self, context):
        if not getattr(bpy.app, "online_access", True):
            raise client.InferixError(
                "Online access is off (Preferences > System > Network); "
                "Inferix needs it to reach the manager"
            )
        prefs = _prefs(context)
        api = client.Api(prefs.url, prefs.api_key)
        scene = context.scene
        settings = scene.inferix
        start, end, step = _frames(scene, settings)
        frames = client.frames_text(start, end, step)
        width, height = client.scaled_size(
            scene.render.resolution_x,
            scene.render.resolution_y,
            settings.resolution_percentage,
        )
        output = _output_format(scene)
        paths = {
            n: client.delivered_path(scene.render.frame_path(frame=n), "." + output)
            for n in client.frame_numbers(start, end, step)
        }
        _set_status("Checking the manager at %s" % api.base)
        api.check()
        name = bpy.path.basename(bpy.data.filepath) or "untitled.blend"
        folder = tempfile.mkdtemp(prefix="inferix-")
        try:
            copy = os.path.join(folder, "copy", name)
            packed = os.path.join(folder, name)
            _set_status("Packing the scene")
            # A copy of the session as it is now, saved elsewhere: the
            # open file keeps its path, its dirty flag and its data.
            os.makedirs(os.path.dirname(copy))
            try:
                bpy.ops.wm.save_as_mainfile(filepath=copy, copy=True, check_existing=False)
            except RuntimeError as e:
                raise client.InferixError("Cannot save a copy of the scene: %s" % e) from None
            client.pack_scene(bpy.app.binary_path, copy, packed, PACK_SCRIPT)
            _set_status("Uploading %s (%d KiB)" % (name, os.path.getsize(packed) // 1024))
            scene_hash = api.upload_scene(packed, name)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        request = client.job_request(
            scene_hash, name, frames, width, height, _samples(scene, settings),
            priority=settings.priority, chunk=settings.chunk, output=output,
        )
        job_id, quote = api.submit(request)
        job = client.RenderJob(api, job_id, paths)
        price = quote.get("total_price")
        job.message = "Submitted job %s: frames %s at %d×%d%s" % (
            job_id, frames, width, height,
            ", %.2f credits" % (price / 1e6) if isinstance(price, int) else "",
        )
        return job


class INFERIX_OT_cancel(bpy.types.Operator):
    """Cancel the running Inferix job"""

    bl_idname = "inferix.cancel"
    bl_label = "Cancel Inferix Job"

    @classmethod
    def poll(cls, context):
        return Progress.job is not None and not Progress.job.finished

    def execute(self, context):
        try:
            Progress.job.cancel()
        except client.InferixError as e:
            self.report({"ERROR"}, str(e))
            return {"CANCELLED"}
        _set_status(Progress.job.message)
        return {"FINISHED"}


class RENDER_PT_inferix(bpy.types.Panel):
    bl_label = "Inferix"
    bl_space_type = "PROPERTIES"
    bl_region_type = "WINDOW"
    bl_context = "output"

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        layout.use_property_decorate = False
        scene = context.scene
        settings = scene.inferix
        layout.prop(settings, "use_scene_frames")
        col = layout.column(align=True)
        col.enabled = not settings.use_scene_frames
        start, end, step = _frames(scene, settings)
        if settings.use_scene_frames:
            every = " every %d" % step if step > 1 else ""
            col.label(text="Frames %d-%d%s" % (start, end, every))
        else:
            col.prop(settings, "frame_start")
            col.prop(settings, "frame_end")
        layout.prop(settings, "resolution_percentage")
        r = scene.render
        pct = settings.resolution_percentage
        layout.label(text="%d×%d px" % (r.resolution_x * pct // 100, r.resolution_y * pct // 100))
        layout.prop(settings, "use_scene_samples")
        if settings.use_scene_samples:
            layout.label(text="%d samples per pixel" % _samples(scene, settings))
        else:
            layout.prop(settings, "samples")
        layout.prop(settings, "priority")
        layout.prop(settings, "chunk")
        running = Progress.job is not None and not Progress.job.finished
        row = layout.row(align=True)
        row.enabled = not running
        row.operator(INFERIX_OT_render.bl_idname, icon="RENDER_ANIMATION")
        if running:
            layout.operator(INFERIX_OT_cancel.bl_idname, icon="CANCEL")
        if Progress.message:
            box = layout.box()
            icon = "ERROR" if Progress.error else "INFO"
            for i, line in enumerate(textwrap.wrap(Progress.message, 48)):
                box.label(text=line, icon=icon if i == 0 else "BLANK1")


CLASSES = (
    InferixPreferences,
    InferixSettings,
    INFERIX_OT_render,
    INFERIX_OT_cancel,
    RENDER_PT_inferix,
)


def register():
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    bpy.types.Scene.inferix = PointerProperty(type=InferixSettings)


def unregister():
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    del bpy.types.Scene.inferix
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
