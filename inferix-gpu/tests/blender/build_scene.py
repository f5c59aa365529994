import bpy, math, sys
args = sys.argv[sys.argv.index("--") + 1:]
out, opts = args[0], dict((a.split("=", 1) + [""])[:2] for a in args[1:])
if "library" in opts:
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.mesh.primitive_uv_sphere_add(radius=0.7, location=(1.8, 0.5, 0.7))
    bpy.context.object.name = "LibSphere"
    bpy.ops.wm.save_as_mainfile(filepath=opts["library"])
bpy.ops.wm.read_factory_settings(use_empty=True)
sc = bpy.context.scene
sc.render.engine = "CYCLES"
sc.frame_start, sc.frame_end = 1, 10
bpy.ops.mesh.primitive_plane_add(size=10)
plane = bpy.context.object
if "texture" in opts:
    img = bpy.data.images.load(opts["texture"])
    m = bpy.data.materials.new("ground")
    m.use_nodes = True
    tex = m.node_tree.nodes.new("ShaderNodeTexImage")
    tex.image = img
    bsdf = m.node_tree.nodes["Principled BSDF"]
    m.node_tree.links.new(tex.outputs["Color"], bsdf.inputs["Base Color"])
    plane.data.materials.append(m)
bpy.ops.mesh.primitive_cube_add(size=1.5, location=(0, 0, 0.75))
cube = bpy.context.object
cube.rotation_euler = (0, 0, 0)
cube.keyframe_insert("rotation_euler", frame=1)
cube.rotation_euler = (0, 0, math.pi)
cube.keyframe_insert("rotation_euler", frame=10)
mat = bpy.data.materials.new("cube")
mat.use_nodes = True
mat.node_tree.nodes["Principled BSDF"].inputs["Base Color"].default_value = (0.8, 0.2, 0.1, 1)
cube.data.materials.append(mat)
bpy.ops.object.light_add(type="SUN", rotation=(0.6, 0.2, 0.5))
bpy.context.object.data.energy = 3
bpy.ops.object.camera_add(location=(5, -5, 4), rotation=(math.radians(60), 0, math.radians(45)))
cam = bpy.context.object
sc.camera = cam
cam.keyframe_insert("location", frame=1)
cam.location = (5.5, -4.5, 4.2)
cam.keyframe_insert("location", frame=10)
if "library" in opts:
    with bpy.data.libraries.load(opts["library"], link=True) as (src, dst):
        dst.objects = ["LibSphere"]
    assert len(dst.objects) == 1 and dst.objects[0] is not None
    for o in dst.objects:
        sc.collection.objects.link(o)
if "dof" in opts:
    cam.data.dof.use_dof = True
w = bpy.data.worlds.new("w")
sc.world = w
w.use_nodes = True
w.node_tree.nodes["Background"].inputs["Color"].default_value = (0.05, 0.07, 0.1, 1)
code = None
if "raise" in opts:
    code = ("import bpy\n"
            "def inferix_test_handler(scene, *args):\n"
            "    raise RuntimeError('scene script exploded')\n"
            "bpy.app.handlers.frame_change_pre.append(inferix_test_handler)\n")
if "hang" in opts:
    code = ("import bpy, os, subprocess, time\n"
            "def inferix_test_handler(scene, *args):\n"
            "    child = subprocess.Popen(['sleep', %r])\n"
            # Popen returns once the child execs, a moment before the new
            # command line shows in /proc; the host looks for it there.
            "    cmdline = '/proc/%%d/cmdline' %% child.pid\n"
            "    while b'sleep' not in open(cmdline, 'rb').read():\n"
            "        os.sched_yield()\n"
            "    try:\n"
            "        with open(%r, 'w') as f:\n"
            "            f.write('%%d %%d' %% (os.getpid(), child.pid))\n"
            "    except OSError:\n"
            "        pass\n"
            "    time.sleep(600)\n"
            "bpy.app.handlers.frame_change_pre.append(inferix_test_handler)\n") % (
                opts.get("sleep", "600"), opts["hang"])
if "volume" in opts:
    vol = bpy.data.volumes.new("smoke")
    vol.filepath = opts["volume"]
    sc.collection.objects.link(bpy.data.objects.new("smoke", vol))
if "writes" in opts:
    code = "open(%r, 'w').write('scene python ran')\n" % opts["writes"]
    fc = cube.driver_add("location", 2)
    fc.driver.type = "SCRIPTED"
    fc.driver.expression = "open(%r, 'w').write('driver ran') * 0 + 0.75" % (
        opts["writes"] + ".driver")
if "escape" in opts:
    # Tries to read a file outside the scene's folder and send it to a
    # local port, to reach that port at all, and to write outside; exits
    # Blender with a distinct code for whichever works.
    secret, port, marker = opts["escape"].split(",")
    code = (
        "import os, socket\n"
        "def _escape(secret, port, marker):\n"
        "    try:\n"
        "        data = open(secret, 'rb').read()\n"
        "    except OSError:\n"
        "        data = None\n"
        "    if data is not None:\n"
        "        try:\n"
        "            socket.create_connection(('127.0.0.1', port), timeout=5).sendall(data)\n"
        "        except OSError:\n"
        "            pass\n"
        "        os._exit(41)\n"
        "    try:\n"
        "        socket.create_connection(('127.0.0.1', port), timeout=5).close()\n"
        "        os._exit(42)\n"
        "    except OSError:\n"
        "        pass\n"
        "    try:\n"
        "        open(marker, 'w').write('escaped')\n"
        "        os._exit(43)\n"
        "    except OSError:\n"
        "        pass\n"
        "_escape(%r, %d, %r)\n" % (secret, int(port), marker))
if code is not None:
    t = bpy.data.texts.new("inferix_test_handler.py")
    t.use_module = True
    t.write(code)
bpy.ops.wm.save_as_mainfile(filepath=out)
if "texture_as" in opts:
    img.filepath_raw = opts["texture_as"]
    bpy.ops.wm.save_mainfile(filepath=out)
