# Renders frames of a .blend for Inferix, headless.
#
# Run as: blender -b --factory-startup [--disable-autoexec|--enable-autoexec]
#         --python-exit-code 1 --python render.py -- job.json
#
# job.json (written by inferix-gpu's BlenderRenderer) names the scene, the
# frames, the settings and the output folder. The scene is opened from this
# script rather than from the command line so that a file Blender cannot read
# is an error here instead of a silent render of the default scene.
#
# Outcome: one line "INFERIX-FRAME <frame> <path>" on stdout per written
# frame; failures as described in common.py.

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import bpy  # noqa: E402

JOB = common.load_job()


def fail(kind, message, files=None):
    common.fail(JOB, kind, message, files)


def check_scene_errors():
    common.check_scene_errors(JOB)


scene = common.open_scene(JOB)
r = scene.render
engine = JOB["engine"]
r.engine = {"cycles_cpu": "CYCLES", "cycles_gpu": "CYCLES",
            "eevee": "BLENDER_EEVEE", "workbench": "BLENDER_WORKBENCH"}[engine]
r.resolution_x = JOB["width"]
r.resolution_y = JOB["height"]
r.resolution_percentage = 100
r.use_stamp = False
r.use_compositing = False
r.use_sequencer = False
r.dither_intensity = 0.0
r.film_transparent = bool(JOB["film_transparent"])
r.use_persistent_data = False
r.use_lock_interface = False
r.threads_mode = "AUTO"
# The view transform only shapes 8-bit outputs; Standard keeps PNG bytes a
# plain sRGB encoding of the linear render, like the rest of Inferix.
vs = scene.view_settings
vs.view_transform = "Standard"
vs.look = "None"
vs.exposure = 0.0
vs.gamma = 1.0
vs.use_curve_mapping = False
scene.display_settings.display_device = "sRGB"
scene.sequencer_colorspace_settings.name = "sRGB"
for layer in scene.view_layers:
    layer.use_pass_combined = True
    if hasattr(layer, "cycles"):
        layer.cycles.denoising_store_passes = False

if r.engine == "CYCLES":
    c = scene.cycles
    c.samples = JOB["samples"]
    c.max_bounces = JOB["max_bounces"]
    c.seed = JOB["seed"]
    c.use_animated_seed = False
    # Per-pixel determinism: nothing may depend on neighbouring pixels or on
    # wall-clock time, so a crop equals the same region of the full frame.
    c.use_adaptive_sampling = False
    c.use_denoising = False
    c.time_limit = 0.0
    if hasattr(c, "use_guiding"):
        c.use_guiding = False
    if hasattr(c, "use_auto_tile"):
        c.use_auto_tile = False
    if engine == "cycles_gpu":
        prefs = bpy.context.preferences.addons["cycles"].preferences
        chosen = None
        for kind in ("OPTIX", "CUDA", "HIP", "ONEAPI", "METAL"):
            try:
                prefs.compute_device_type = kind
            except TypeError:
                continue
            prefs.get_devices()
            gpus = [d for d in prefs.devices if d.type == kind]
            if gpus:
                for d in prefs.devices:
                    d.use = d.type == kind
                chosen = kind
                break
        if chosen is None:
            fail("no_device", "Cycles found no GPU (tried OptiX, CUDA, HIP, oneAPI, Metal)")
        c.device = "GPU"
        print("INFERIX-DEVICE %s" % chosen)
    else:
        c.device = "CPU"
elif r.engine == "BLENDER_EEVEE":
    scene.eevee.taa_render_samples = JOB["samples"]


def set_region(crop):
    """Renders only `crop` ([x, y, w, h], rows from the top) or everything."""
    if crop is None:
        r.use_border = False
        r.use_crop_to_border = False
        return
    # Blender truncates border * resolution to whole pixels, so each edge is
    # nudged a quarter pixel past its pixel boundary to land on exactly the
    # requested one. Rows count from the bottom in Blender.
    x, y, w, h = crop
    W, H = JOB["width"], JOB["height"]
    r.use_border = True
    r.use_crop_to_border = True
    r.border_min_x = min(1.0, (x + 0.25) / W) if x > 0 else 0.0
    r.border_max_x = min(1.0, (x + w + 0.25) / W) if x + w < W else 1.0
    r.border_min_y = min(1.0, (H - y - h + 0.25) / H) if y + h < H else 0.0
    r.border_max_y = min(1.0, (H - y + 0.25) / H) if y > 0 else 1.0


settings = r.image_settings
if JOB["output"] == "exr":
    settings.file_format = "OPEN_EXR"
    settings.color_depth = "32"
    settings.exr_codec = "ZIP"
    settings.color_mode = "RGBA"
    ext = "exr"
else:
    settings.file_format = "PNG"
    settings.color_depth = "8"
    settings.color_mode = "RGBA" if JOB["film_transparent"] else "RGB"
    settings.compression = 15
    ext = "png"
r.use_file_extension = False

# Several crops of a frame (a verifier's challenges) share one process and
# one scene evaluation.
crops = JOB["crops"] or [None]
for frame in JOB["frames"]:
    scene.frame_set(frame)
    check_scene_errors()
    for index, crop in enumerate(crops):
        set_region(crop)
        path = os.path.join(JOB["out_dir"], "frame_%08d_%04d.%s" % (frame, index, ext))
        r.filepath = path
        try:
            bpy.ops.render.render(write_still=True)
        except RuntimeError as e:
            fail("render_failed", "frame %d: %s" % (frame, e))
        check_scene_errors()
        if not os.path.exists(path):
            fail("render_failed", "frame %d: Blender wrote no image" % frame)
        print("INFERIX-FRAME %d %d %s" % (frame, index, path))
        sys.stdout.flush()
