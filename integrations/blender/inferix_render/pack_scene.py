# Runs in a separate Blender (`client.pack_command`) on a copy of the
# user's file: packs every external image, font, sound, volume and linked
# library into it and saves it as the self-contained scene to upload. The
# user's own file and session are never touched.
import os
import sys

import bpy


def external(block):
    """Where `block`'s file lies, when it is still outside the .blend."""
    if getattr(block, "packed_file", None) is not None:
        return None
    path = getattr(block, "filepath", "")
    if not path or path == "<builtin>":
        return None
    return bpy.path.abspath(path, library=getattr(block, "library", None))


def main():
    target = sys.argv[sys.argv.index("--") + 1]
    try:
        bpy.ops.file.pack_all()
    except RuntimeError as e:
        print("INFERIX-PACK-WARNING %s" % str(e).strip())
    if bpy.data.libraries:
        try:
            # Blender packs only libraries referenced by relative paths.
            bpy.ops.file.make_paths_relative()
            bpy.ops.file.pack_libraries()
        except RuntimeError as e:
            print("INFERIX-PACK-WARNING %s" % str(e).strip())
    left = []
    for image in bpy.data.images:
        if image.source in {"FILE", "SEQUENCE", "MOVIE"}:
            path = external(image)
            if path:
                left.append("image %s (%s)" % (image.name, path))
    for kind in ("fonts", "sounds", "volumes", "libraries"):
        for block in getattr(bpy.data, kind, []):
            path = external(block)
            if path:
                left.append("%s %s (%s)" % (kind[:-1], block.name, path))
    for line in left:
        missing = "" if os.path.exists(line.rsplit("(", 1)[1][:-1]) else ", missing"
        print("INFERIX-UNPACKED %s%s" % (line, missing))
    if left:
        sys.exit(3)
    os.makedirs(os.path.dirname(os.path.abspath(target)), exist_ok=True)
    bpy.ops.wm.save_as_mainfile(filepath=target, copy=True, check_existing=False)
    print("INFERIX-PACKED %s" % target)


main()
