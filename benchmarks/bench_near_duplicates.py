"""Near-duplicate detection and image quality measures on tasks of different kinds.

Run:  python benchmarks/bench_near_duplicates.py [--per-kind 40]

For each kind of picture (crops of two real photos, the bundled handwritten digits, drawn shapes,
drawn glyphs, textures) it reports, in one run:

- found: the share of edited copies (re-encoded, resized, contrast, brighter, softened, mirrored,
  5 %-cropped, rotated 3°) that the doctor pairs with their original;
- false pairs: pairs of *different* pictures of one kind that it calls near-duplicates (per 1,000
  pairs), and the largest group they form;
- sharpness of the pictures as they are and after Gaussian blurs (1.5 % and 2.5 % of the side),
  against the blur threshold.
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageEnhance, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from factory import GLYPHS_B, SHAPES_C, TEXTURES_B, draw_any  # noqa: E402

from tlstudio.core.data import looks  # noqa: E402
from tlstudio.package_data import sample_dataset  # noqa: E402

EDITS = (
    "jpeg q40",
    "2/3 size",
    "2× size",
    "contrast 0.8",
    "brighter 1.1",
    "blur 0.8 px",
    "mirrored",
    "crop 5 %",
    "rotate 3°",
)


def edit(img: Image.Image, name: str) -> Image.Image:
    """One edit of a picture, as copying it around would make."""
    w, h = img.size
    if name == "jpeg q40":
        buf = io.BytesIO()
        img.convert("RGB").save(buf, "JPEG", quality=40)
        return Image.open(io.BytesIO(buf.getvalue()))
    if name == "2/3 size":
        return img.resize((max(8, w * 2 // 3), max(8, h * 2 // 3)))
    if name == "2× size":
        return img.resize((w * 2, h * 2))
    if name == "contrast 0.8":
        return ImageEnhance.Contrast(img.convert("RGB")).enhance(0.8)
    if name == "brighter 1.1":
        return ImageEnhance.Brightness(img.convert("RGB")).enhance(1.1)
    if name == "blur 0.8 px":
        return img.filter(ImageFilter.GaussianBlur(0.8))
    if name == "mirrored":
        return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if name == "crop 5 %":
        dx, dy = max(1, round(w * 0.05)), max(1, round(h * 0.05))
        return img.crop((dx, dy, w - dx, h - dy)).resize((w, h))
    return img.rotate(3, resample=Image.Resampling.BILINEAR)


def kinds(per_kind: int) -> dict[str, list[Image.Image]]:
    """Pictures of each kind (deterministic)."""
    from sklearn.datasets import load_sample_images

    rng = np.random.default_rng(0)
    crops = []
    for photo in load_sample_images().images:
        height, width, _ = photo.shape
        for _ in range(per_kind // 2):
            y, x = rng.integers(0, height - 200), rng.integers(0, width - 200)
            crops.append(Image.fromarray(photo[y : y + 200, x : x + 200]))
    digits = sorted(sample_dataset().glob("*/*.png"))[:: max(1, 400 // per_kind)][:per_kind]
    return {
        "photo crops (200 px)": crops,
        "handwritten digits (32 px)": [Image.open(p).convert("L") for p in digits],
        "drawn shapes (64 px)": [
            Image.fromarray(draw_any(SHAPES_C[i % 5], 64, rng)) for i in range(per_kind)
        ],
        "drawn glyphs (32 px)": [
            Image.fromarray(draw_any(GLYPHS_B[i % 5], 32, rng)) for i in range(per_kind)
        ],
        "textures (64 px)": [Image.fromarray(draw_any(TEXTURES_B[i % 5], 64, rng)) for i in range(per_kind)],
    }


def look(img: Image.Image, folder: Path) -> looks.Look:
    path = folder / "x.png"
    img.save(path)
    return looks.look_at(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-kind", type=int, default=40)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tlstudio-bench-nd-"))
    print(
        f"thresholds: hash ≤ {looks.NEAR_DUPLICATE_BITS} of 64 bits and thumbnail correlation ≥ "
        f"{looks.NEAR_DUPLICATE_CORRELATION}; blurred below {looks.BLUR_SHARPNESS} sharpness\n"
    )
    print("| pictures | " + " | ".join(EDITS) + " | false pairs /1000 | largest false group |")
    print("| --- |" + " ---: |" * (len(EDITS) + 2))
    sharp_rows = []
    for name, pictures in kinds(args.per_kind).items():
        originals = [look(p, folder) for p in pictures]
        found = []
        for edit_name in EDITS:
            hits = sum(
                bool(looks.near_duplicate_pairs([originals[i], look(edit(p, edit_name), folder)]))
                for i, p in enumerate(pictures[:20])
            )
            found.append(hits / min(20, len(pictures)))
        pairs = looks.near_duplicate_pairs(originals)
        sizes = np.bincount(looks.look_alike_labels(originals))
        n_pairs = len(originals) * (len(originals) - 1) // 2
        print(
            f"| {name} | "
            + " | ".join(f"{f:.0%}" for f in found)
            + f" | {1000 * len(pairs) / n_pairs:.1f} | {int(sizes.max()) if sizes.max() > 1 else 0} |"
        )
        sharp = [o.sharpness for o in originals]
        blurred = {
            share: [
                look(p.filter(ImageFilter.GaussianBlur(share * max(p.size))), folder).sharpness
                for p in pictures[:10]
            ]
            for share in (0.015, 0.025)
        }
        sharp_rows.append(
            (name, min(sharp), float(np.median(sharp)), max(blurred[0.015]), max(blurred[0.025]))
        )
    print("\n| pictures | sharpness min | median | blurred 1.5 % (max) | blurred 2.5 % (max) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, lo, med, b1, b2 in sharp_rows:
        print(f"| {name} | {lo:.3f} | {med:.3f} | {b1:.3f} | {b2:.3f} |")


if __name__ == "__main__":
    main()
