"""Render a shot on Inferix and assemble the frames into a contact sheet and
an animated GIF.

    python examples/pipeline.py                      # a local network in-process
    python examples/pipeline.py --url ID@HOST:PORT --token T --scene shot.glb

Progress shows as a tqdm bar when tqdm is installed, else as plain lines.
"""

import argparse
import math
import pathlib
import sys
import tempfile

from PIL import Image

import inferix


def progress(total: int):
    """A callable taking the number of accepted frames, and a closer."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None and sys.stderr.isatty():
        bar = tqdm(total=total, unit="frame", desc="rendering")

        def update(done: int) -> None:
            bar.update(done - bar.n)

        return update, bar.close

    def plain(done: int) -> None:
        print(f"rendering: {done}/{total} frames", flush=True)

    return plain, lambda: None


def contact_sheet(frames, columns: int) -> Image.Image:
    """Frames laid out left to right, top to bottom."""
    w, h = frames[0].size
    rows = math.ceil(len(frames) / columns)
    sheet = Image.new("RGB", (columns * w, rows * h))
    for i, frame in enumerate(frames):
        sheet.paste(frame, ((i % columns) * w, (i // columns) * h))
    return sheet


def render_shot(client: inferix.Client, args: argparse.Namespace) -> list:
    quote = client.quote(args.scene, frames=args.frames, resolution=args.resolution, samples=args.samples)
    print(f"quote: {quote.total_price} micro-credits for {quote.frames} frames")
    job = client.submit(args.scene, frames=args.frames, resolution=args.resolution, samples=args.samples)
    update, close = progress(quote.frames)
    try:
        for event in job.events(timeout=args.timeout):
            if event.kind == "accepted":
                update(event.accepted_frames)
            elif event.kind in ("rejected", "requeued", "waiting"):
                print(f"{event.kind}: {'; '.join(event.reasons)}", flush=True)
    finally:
        close()
    status = job.status()
    if status.state != "completed":
        raise SystemExit(f"job {job.id} ended {status.state}")
    return job.download(args.out / job.id)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--url", help="manager address; default: run a local network")
    p.add_argument("--token", help="the API key of your account (inferix account create)")
    p.add_argument("--scene", type=pathlib.Path, help="scene file; default: the built-in demo")
    p.add_argument("--frames", default="1-8")
    p.add_argument("--resolution", type=lambda s: tuple(int(v) for v in s.split("x")), default=(160, 90))
    p.add_argument("--samples", type=int, default=4)
    p.add_argument("--columns", type=int, default=4)
    p.add_argument("--timeout", type=float, default=600, help="seconds to wait for each event")
    p.add_argument("--out", type=pathlib.Path, default=pathlib.Path("pipeline-out"))
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        if args.scene is None:
            args.scene = inferix.demo_scene(pathlib.Path(tmp) / "demo.glb")
        try:
            if args.url:
                with inferix.Client(args.url, token=args.token) as client:
                    files = render_shot(client, args)
            else:
                with inferix.LocalNetwork(workers=3, verifiers=1) as net, net.client() as client:
                    files = render_shot(client, args)
        except inferix.InferixError as e:
            raise SystemExit(f"error: {e}")

    frames = [Image.open(f).convert("RGB") for f in files]
    sheet_path = files[0].parent / "contact_sheet.png"
    sheet = contact_sheet(frames, args.columns)
    sheet.save(sheet_path)
    gif_path = files[0].parent / "shot.gif"
    frames[0].save(gif_path, save_all=True, append_images=frames[1:], duration=1000 // 12, loop=0)
    print(f"contact sheet: {sheet_path} ({sheet.width}x{sheet.height})")
    print(f"animation: {gif_path} ({len(frames)} frames)")


if __name__ == "__main__":
    main()
