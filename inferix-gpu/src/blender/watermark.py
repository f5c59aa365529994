# Proof-of-Render watermarking of a .blend (Active Noise Generation): adds one
# camera-facing emissive plane per noise patch so that the plane covers
# exactly the patch's rectangle of the frame, then saves a self-contained
# copy (everything packed).
#
# job.json: {"scene", "out", "width", "height", "error_file",
#            "patches": [{"x", "y", "w", "h", "texels": [w*h floats, rows
#                          from the top of the frame]}]}
#
# Each plane is parented to the active camera, in camera space, just past
# the near clip plane (so nothing in the scene can occlude it), with corners
# computed from the camera's view frame (lens or ortho scale, sensor fit,
# shift, aspect of width x height). It is visible to camera rays only (no
# shadows, reflections or light sampling), so the rest of the image is
# untouched. Its texture holds one texel per covered pixel, with closest
# interpolation, emitting the texel value as linear radiance.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

import bpy  # noqa: E402

JOB = common.load_job()
scene = common.open_scene(JOB)
cam_obj = scene.camera
cam = cam_obj.data
if cam_obj.type != "CAMERA":
    common.fail(JOB, "invalid_scene", "the active camera %r is not a camera" % cam_obj.name)
if cam.type == "PANO":
    common.fail(JOB, "unsupported_scene", "panoramic cameras cannot carry noise patches")
if cam.dof.use_dof:
    common.fail(JOB, "unsupported_scene",
                "camera depth of field would blur the noise patches")
anim = cam.animation_data
if anim is not None and ((anim.action is not None and len(anim.action.fcurves) > 0)
                         or len(anim.drivers) > 0):
    common.fail(JOB, "unsupported_scene",
                "animated camera lens/sensor/shift would move the noise patches")

if any(m.camera is not None for m in scene.timeline_markers):
    common.fail(JOB, "unsupported_scene",
                "timeline markers switch cameras; patches follow only the active camera")
if scene.render.use_multiview:
    common.fail(JOB, "unsupported_scene", "stereo/multi-view rendering is not supported")

W, H = JOB["width"], JOB["height"]
r = scene.render
r.resolution_x = W
r.resolution_y = H
r.resolution_percentage = 100

# The frame's corners in camera space; for a perspective camera they are
# scaled to the patch depth.
depth = cam.clip_start * 1.001 + 1e-6
corners = cam.view_frame(scene=scene)
if cam.type == "PERSP":
    corners = [c * (depth / -c.z) for c in corners]
left = min(c.x for c in corners)
right = max(c.x for c in corners)
bottom = min(c.y for c in corners)
top = max(c.y for c in corners)


def to_camera(px, py):
    """Camera-space point of frame position (px, py), pixels from top-left."""
    return (left + (right - left) * px / W, top - (top - bottom) * py / H, -depth)


# Cycles (the verified engine) scales all radiance by its film exposure.
strength = 1.0
if hasattr(scene, "cycles") and scene.cycles.film_exposure > 0:
    strength = 1.0 / scene.cycles.film_exposure

coll = bpy.data.collections.new("InferixNoise")
scene.collection.children.link(coll)
for i, p in enumerate(JOB["patches"]):
    x, y, w, h = p["x"], p["y"], p["w"], p["h"]
    name = "InferixNoise.%03d" % i

    img = bpy.data.images.new(name, w, h, alpha=False, float_buffer=True)
    img.colorspace_settings.name = "Non-Color"
    texels = p["texels"]
    pixels = []
    for row in range(h):  # Blender rows start at the bottom
        src = texels[(h - 1 - row) * w:(h - row) * w]
        for v in src:
            pixels.extend((v, v, v, 1.0))
    img.pixels = pixels
    img.file_format = "OPEN_EXR"
    img.pack()

    mat = bpy.data.materials.new(name)
    mat.use_nodes = True
    nodes = mat.node_tree.nodes
    nodes.clear()
    tex = nodes.new("ShaderNodeTexImage")
    tex.image = img
    tex.interpolation = "Closest"
    tex.extension = "EXTEND"
    emit = nodes.new("ShaderNodeEmission")
    emit.inputs["Strength"].default_value = strength
    out = nodes.new("ShaderNodeOutputMaterial")
    mat.node_tree.links.new(tex.outputs["Color"], emit.inputs["Color"])
    mat.node_tree.links.new(emit.outputs["Emission"], out.inputs["Surface"])
    if hasattr(mat, "cycles") and hasattr(mat.cycles, "sample_as_light"):
        mat.cycles.sample_as_light = False

    verts = [to_camera(x, y + h), to_camera(x + w, y + h), to_camera(x + w, y), to_camera(x, y)]
    mesh = bpy.data.meshes.new(name)
    mesh.from_pydata(verts, [], [(0, 1, 2, 3)])
    uv = mesh.uv_layers.new(name="UVMap")
    for loop, co in zip(mesh.loops, [(0, 0), (1, 0), (1, 1), (0, 1)]):
        uv.data[loop.index].uv = co
    mesh.materials.append(mat)
    mesh.update()

    obj = bpy.data.objects.new(name, mesh)
    coll.objects.link(obj)
    obj.parent = cam_obj
    obj.matrix_parent_inverse.identity()
    for attr in ("visible_shadow", "visible_diffuse", "visible_glossy",
                 "visible_transmission", "visible_volume_scatter"):
        if hasattr(obj, attr):
            setattr(obj, attr, False)
    obj.hide_render = False

common.pack_everything(JOB)
common.save_copy(JOB, JOB["out"])
print("INFERIX-WATERMARKED %s %d" % (JOB["out"], len(JOB["patches"])))
