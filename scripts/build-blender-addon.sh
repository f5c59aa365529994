#!/usr/bin/env bash
# Zips the Blender add-on (integrations/blender/inferix_render) into
# target/inferix_render.zip, or into the path given as the first argument,
# ready for Edit > Preferences > Add-ons > Install…. Idempotent: the zip is
# rebuilt from the sources each time and replaced in one step.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$root/target/inferix_render.zip}"
mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
python3 - "$root/integrations/blender" "$out" <<'PY'
import os, sys, tempfile, zipfile

src, out = sys.argv[1], sys.argv[2]
package = "inferix_render"
fd, part = tempfile.mkstemp(prefix=".inferix_render-", suffix=".zip", dir=os.path.dirname(out))
os.close(fd)
with zipfile.ZipFile(part, "w", zipfile.ZIP_DEFLATED) as z:
    for folder, dirs, files in os.walk(os.path.join(src, package)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith((".pyc", ".pyo")):
                continue
            path = os.path.join(folder, name)
            arcname = os.path.relpath(path, src)
            info = zipfile.ZipInfo(arcname, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as f:
                z.writestr(info, f.read())
os.chmod(part, 0o644)
os.replace(part, out)
PY
echo "build-blender-addon: wrote $out"
