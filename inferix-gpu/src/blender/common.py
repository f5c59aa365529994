# Shared helpers of Inferix's Blender scripts (render.py, watermark.py,
# pack.py). Written beside them into the job folder and imported from there.
#
# Each script is run as
#   blender -b --factory-startup --disable-autoexec --python-exit-code 1
#           --python <script> -- job.json
# and reports failure by writing {"kind", "message", "files"} to
# job["error_file"] and exiting with code 3.

import json
import os
import sys
import traceback

import bpy

# Exceptions raised by the scene's own Python (text blocks run on load,
# frame-change handlers, drivers) are printed by Blender and otherwise
# ignored; Blender reports them through sys.excepthook, so they are
# collected here and turned into a failure.
SCENE_ERRORS = []
_default_hook = sys.excepthook


def _hook(kind, value, tb):
    SCENE_ERRORS.append("".join(traceback.format_exception(kind, value, tb)))
    _default_hook(kind, value, tb)


sys.excepthook = _hook


def load_job():
    args = sys.argv[sys.argv.index("--") + 1:]
    with open(args[0], "r", encoding="utf-8") as f:
        return json.load(f)


def fail(job, kind, message, files=None):
    with open(job["error_file"], "w", encoding="utf-8") as f:
        json.dump({"kind": kind, "message": message, "files": files or []}, f)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(3)


def check_scene_errors(job):
    if SCENE_ERRORS:
        fail(job, "script_error", SCENE_ERRORS[0][-4000:])


def missing_files():
    """External files the scene refers to that are neither packed nor on disk."""
    missing = []

    def check(path, lib):
        if not path:
            return
        full = os.path.normpath(bpy.path.abspath(path, library=lib))
        if not os.path.exists(full):
            missing.append(full)

    for lib in bpy.data.libraries:
        if lib.packed_file is None:
            check(lib.filepath, None)
    for img in bpy.data.images:
        if img.source in {"FILE", "SEQUENCE", "MOVIE"} and img.packed_file is None \
                and len(img.packed_files) == 0:
            check(img.filepath, img.library)
    for coll in (bpy.data.movieclips, bpy.data.volumes, bpy.data.cache_files):
        for item in coll:
            if getattr(item, "packed_file", None) is None:
                check(item.filepath, item.library)
    for font in bpy.data.fonts:
        if font.filepath != "<builtin>" and font.packed_file is None:
            check(font.filepath, font.library)
    return sorted(set(missing))


def open_scene(job):
    """Opens job["scene"]; fails on unreadable files, scene script errors and
    missing external files. Returns the active scene."""
    try:
        bpy.ops.wm.open_mainfile(filepath=job["scene"], load_ui=False)
    except RuntimeError as e:
        fail(job, "unreadable_scene", str(e).strip())
    check_scene_errors(job)
    missing = missing_files()
    if missing:
        fail(job, "missing_files", "%d referenced file(s) are missing" % len(missing), missing)
    scene = bpy.context.scene
    if scene.camera is None:
        fail(job, "invalid_scene", "the scene has no active camera")
    return scene


def pack_everything(job):
    """Packs images, fonts, sounds, volumes and linked libraries into the
    open file so that a copy saved elsewhere is self-contained."""
    try:
        bpy.ops.file.pack_all()
        if bpy.data.libraries:
            # Blender packs only libraries referenced by relative paths.
            bpy.ops.file.make_paths_relative()
            bpy.ops.file.pack_libraries()
    except RuntimeError as e:
        fail(job, "pack_failed", str(e).strip())


def save_copy(job, path):
    try:
        bpy.ops.wm.save_as_mainfile(filepath=path, copy=True, check_existing=False)
    except RuntimeError as e:
        fail(job, "save_failed", str(e).strip())
    check_scene_errors(job)
