# Shared helpers of Inferix's Blender scripts (render.py, watermark.py,
# pack.py). Written beside them into the job folder and imported from there.
#
# Each script is run as
#   blender -b --factory-startup --disable-autoexec --python-exit-code 1
#           --python <script> -- job.json
# and reports failure by writing {"kind", "message", "files", "refs"} to
# job["error_file"] and exiting with code 3.
#
# Scenes come from strangers and are packed on the manager and rendered on
# workers, so a scene may name only files that are packed into it or that
# lie inside its own folder once `//`, `..` and symlinks are resolved.
# Anything else (the node's keys, its database, credentials, other users'
# scenes) is refused as "outside_files", naming each datablock and path,
# before any file is packed, rendered or looked for. Blender itself opens
# linked libraries, fonts, volumes and cache files while loading the file,
# before this check can run (autoexec stays off, so none of their Python
# runs); their contents stay in the process, which is refused before it
# writes anything. Paths outside the folder are reported as written, so
# the error does not describe the node's own symlinks to the sender.

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


def fail(job, kind, message, files=None, refs=None):
    with open(job["error_file"], "w", encoding="utf-8") as f:
        json.dump({"kind": kind, "message": message, "files": files or [],
                   "refs": refs or []}, f)
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


def _described_refs():
    """(datablock, path, library) of every external file reference a
    datablock names, packed ones excluded. Paths are as stored (possibly
    `//`-relative to the library or main file)."""
    refs = []

    def add(kind, item, path, lib=None, pattern=False):
        if path and path != "<builtin>":
            refs.append(("%s %r" % (kind, item.name), path, lib, pattern))

    for lib in bpy.data.libraries:
        if lib.packed_file is None:
            add("library", lib, lib.filepath, lib.parent)
    for img in bpy.data.images:
        if img.source in {"FILE", "SEQUENCE", "MOVIE", "TILED"} and img.packed_file is None \
                and len(img.packed_files) == 0:
            add("image", img, img.filepath, img.library,
                img.source in {"SEQUENCE", "TILED"})
    for kind, coll in (("movie clip", bpy.data.movieclips), ("sound", bpy.data.sounds),
                       ("volume", bpy.data.volumes), ("cache file", bpy.data.cache_files),
                       ("font", bpy.data.fonts)):
        for item in coll:
            if getattr(item, "packed_file", None) is None:
                add(kind, item, item.filepath, item.library,
                    getattr(item, "source", "") == "SEQUENCE"
                    or getattr(item, "is_sequence", False))
    for text in bpy.data.texts:
        if not text.is_in_memory:
            add("text", text, text.filepath, text.library)
    for obj in bpy.data.objects:
        for mod in obj.modifiers:
            for attr in ("filepath", "cache_directory"):
                add("object %r modifier" % obj.name, mod, getattr(mod, attr, ""), obj.library)
            settings = getattr(mod, "domain_settings", None)
            if settings is not None:
                add("object %r fluid cache" % obj.name, mod, settings.cache_directory, obj.library)
            cache = getattr(mod, "point_cache", None)
            if cache is not None and cache.use_external:
                add("object %r point cache" % obj.name, mod, cache.filepath, obj.library)
        for psys in obj.particle_systems:
            cache = psys.point_cache
            if cache.use_external:
                add("object %r particle cache" % obj.name, psys, cache.filepath, obj.library)
    trees = [m.node_tree for m in bpy.data.materials if m.node_tree is not None]
    trees += [w.node_tree for w in bpy.data.worlds if w.node_tree is not None]
    trees += [l.node_tree for l in bpy.data.lights if l.node_tree is not None]
    trees += list(bpy.data.node_groups)
    for tree in trees:
        for node in tree.nodes:
            if node.bl_idname in {"ShaderNodeTexIES", "ShaderNodeScript"} \
                    and getattr(node, "mode", "") == "EXTERNAL":
                add("node tree %r node" % tree.name, node, node.filepath, tree.library)
    for scene in bpy.data.scenes:
        if scene.sequence_editor is None:
            continue
        for strip in scene.sequence_editor.sequences_all:
            if strip.type == "IMAGE":
                for elem in strip.elements:
                    add("scene %r strip" % scene.name, strip,
                        os.path.join(strip.directory, elem.filename), scene.library)
            elif strip.type == "MOVIE":
                add("scene %r strip" % scene.name, strip, strip.filepath, scene.library)
    return refs


def _inside(path, root):
    try:
        return os.path.commonpath([path, root]) == root
    except ValueError:
        return False


def _sequence_escapes(full, root):
    """Blender finds the files of an image sequence or UDIM set by name
    pattern, so every file of the folder that could match must stay inside
    `root` too (a symlinked frame or tile could point anywhere)."""
    folder, name = os.path.split(full)
    prefix = name.split("<")[0].split("#")[0]
    if prefix == name:
        prefix = os.path.splitext(name)[0].rstrip("0123456789")
    bad = []
    try:
        with os.scandir(folder) as entries:
            for i, e in enumerate(entries):
                if i >= 100000:
                    break
                if e.name.startswith(prefix):
                    real = os.path.realpath(e.path)
                    if not _inside(real, root):
                        bad.append(real)
    except OSError:
        pass
    return bad


def files_outside(root):
    """External references that are neither packed nor inside `root` once
    `//`, `..` and symlinks are resolved: [(datablock, path)]. Paths that
    are outside as written are reported as written; those that escape
    through a symlink inside the folder, resolved. Nothing is opened; only
    paths and folder listings are looked at."""
    # The folder as the scene was opened may itself be reached through a
    # symlink; stated paths are compared against both spellings.
    named_root = os.path.normpath(os.path.abspath(root))
    root = os.path.realpath(root)
    outside = []

    def _inside_folder(path):
        return _inside(path, root) or _inside(path, named_root)

    seen = set()

    def check(what, path, lib, pattern):
        try:
            full = bpy.path.abspath(path, library=lib)
        except Exception:  # noqa: BLE001 - an unreadable path is refused
            full = path
        stated = os.path.normpath(full)
        real = os.path.realpath(stated)
        seen.add(stated)
        seen.add(real)
        if not _inside_folder(stated):
            # Reported as written: resolving the node's own symlinks would
            # tell the sender about the node's file system.
            outside.append((what, stated))
            return
        if not _inside(real, root):
            # A symlink inside the scene's folder, made by whoever made
            # the folder.
            outside.append((what, real))
            return
        if pattern or any(t in full for t in ("<UDIM>", "<UVTILE>", "#")):
            for bad in _sequence_escapes(real, root):
                outside.append((what, bad))

    for what, path, lib, pattern in _described_refs():
        check(what, path, lib, pattern)
    # Whatever Blender itself knows about and the walk above missed
    # (despite its documentation, packed=False is what leaves packed data out).
    for path in bpy.utils.blend_paths(absolute=True, packed=False, local=False):
        if path and os.path.normpath(path) not in seen:
            check("datablock", path, None, False)
    return sorted(set(outside))


def open_scene(job):
    """Opens job["scene"]; fails on unreadable files, scene script errors and
    missing external files. Returns the active scene."""
    try:
        bpy.ops.wm.open_mainfile(filepath=job["scene"], load_ui=False)
    except RuntimeError as e:
        fail(job, "unreadable_scene", str(e).strip())
    check_scene_errors(job)
    # Before anything is packed, rendered or even checked for existence:
    # a scene may name only files inside its own folder.
    root = os.path.dirname(os.path.abspath(bpy.data.filepath or job["scene"]))
    try:
        outside = files_outside(root)
    except Exception as e:  # noqa: BLE001 - unverifiable means refused
        fail(job, "invalid_scene", "cannot check the scene's external files: %s" % e)
    if outside:
        fail(job, "outside_files",
             "%d external reference(s) lead outside the scene's folder %s: %s" % (
                 len(outside), root,
                 "; ".join("%s -> %s" % (what, path) for what, path in outside[:20])),
             [path for _, path in outside],
             refs=[{"datablock": what, "path": path} for what, path in outside])
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
