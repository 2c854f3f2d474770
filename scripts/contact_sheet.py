"""Save a grid of frames from a video as one PNG, to look at the output like a user would.

    .venv/bin/python scripts/contact_sheet.py VIDEO.mp4 SHEET.png [--every N] [--cols C] [--width W]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from mouthpiece.media import read_video_frames  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("video")
    parser.add_argument("sheet")
    parser.add_argument("--every", type=int, default=5, help="take every Nth frame")
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--count", type=int, default=24)
    parser.add_argument("--cols", type=int, default=6)
    parser.add_argument("--width", type=int, default=220, help="thumbnail width in pixels")
    parser.add_argument("--box", help="x0,y0,x1,y1 fractions of the frame to zoom into")
    args = parser.parse_args()

    thumbs = []
    for index, frame in enumerate(read_video_frames(args.video)):
        if index < args.start or (index - args.start) % args.every:
            continue
        img = Image.fromarray(frame)
        if args.box:
            x0, y0, x1, y1 = (float(v) for v in args.box.split(","))
            w, h = img.size
            img = img.crop((int(x0 * w), int(y0 * h), int(x1 * w), int(y1 * h)))
        img = img.resize((args.width, round(img.height * args.width / img.width)))
        ImageDraw.Draw(img).text((4, 4), str(index), fill=(255, 255, 0))
        thumbs.append(np.asarray(img))
        if len(thumbs) == args.count:
            break
    rows = [thumbs[i:i + args.cols] for i in range(0, len(thumbs), args.cols)]
    blank = np.zeros_like(thumbs[0])
    grid = np.vstack([np.hstack(r + [blank] * (args.cols - len(r))) for r in rows])
    Image.fromarray(grid).save(args.sheet)
    print(f"wrote {args.sheet} ({len(thumbs)} frames)")


if __name__ == "__main__":
    main()
