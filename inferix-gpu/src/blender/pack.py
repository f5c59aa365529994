# Writes a self-contained copy of a .blend: every external image, font,
# sound, volume and linked library packed into it. Missing files fail the
# job (kind "missing_files") instead of producing a scene that renders pink.
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common  # noqa: E402

JOB = common.load_job()
common.open_scene(JOB)
common.pack_everything(JOB)
common.save_copy(JOB, JOB["out"])
print("INFERIX-PACKED %s" % JOB["out"])
