"""The encoded image files a SavedModel's ``serving_bytes`` and ``classify`` are checked on: JPEGs
with every EXIF orientation in both byte orders and PNGs with and without one, each made from a test
image so that, turned upright, it shows that image; and the comparison with ``serving_default`` on the
pixels Pillow decodes (as training does)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

PNG_TOLERANCE = 1e-4  # the run export's own tolerance (export.TOLERANCE)
JPEG_TOLERANCE = 1e-2
# the encoded files a saved_model's serving_bytes and classify are checked on: (format, EXIF
# orientation or None, EXIF byte order "<" II / ">" MM)
ENCODED_PROBES = (
    ("JPEG", None, ""),
    *(("JPEG", o, ">" if o % 2 else "<") for o in range(1, 9)),
    ("PNG", None, ""),
    ("PNG", 6, ">"),
)


_UNDO_ORIENTATION = {  # what turns an upright picture into the pixels a file of that orientation stores
    2: "FLIP_LEFT_RIGHT",
    3: "ROTATE_180",
    4: "FLIP_TOP_BOTTOM",
    5: "TRANSPOSE",
    6: "ROTATE_90",
    7: "TRANSVERSE",
    8: "ROTATE_270",
}


def encoded_probes(images: np.ndarray, folder: Path) -> list[tuple[Path, str, np.ndarray]]:
    """Write ``ENCODED_PROBES`` as files in ``folder`` from the run's test images (cropped to 3:4 so
    a wrong rotation also changes the shape): each stored so that, with its EXIF orientation
    applied, it shows the test image upright.

    Returns:
        (file, what it is, its pixels as training decodes them) per probe.
    """
    from PIL import Image

    from tlstudio.core.data.imagefile import load_rgb

    probes = []
    for k, (fmt, orientation, endian) in enumerate(ENCODED_PROBES):
        upright = Image.fromarray(images[k % len(images)])
        upright = upright.crop((0, 0, upright.width, max(1, upright.height * 3 // 4)))
        stored = upright
        options: dict[str, object] = {"quality": 95} if fmt == "JPEG" else {}
        if orientation is not None:
            if orientation in _UNDO_ORIENTATION:
                stored = upright.transpose(getattr(Image.Transpose, _UNDO_ORIENTATION[orientation]))
            exif = Image.Exif()
            exif.endian = endian
            exif[0x0112] = orientation
            options["exif"] = exif.tobytes()
        path = folder / f"probe-{k}.{fmt.lower()}"
        stored.save(path, fmt, **options)
        what = f"{fmt} " + (
            f"EXIF orientation {orientation} ({'II' if endian == '<' else 'MM'})"
            if orientation
            else "without EXIF"
        )
        probes.append((path, what, np.asarray(load_rgb(path), np.uint8)))
    return probes


def compare_encoded(
    probes: list[tuple[Path, str, np.ndarray]], measured: list[dict]
) -> tuple[bool, str, float]:
    """Whether ``serving_bytes`` and ``classify`` gave, for every probe file, what
    ``serving_default`` gave on its upright pixels; a rule saying so; the largest difference."""
    if len(measured) != len(probes):
        return False, f"serving_bytes: {len(measured)} results for {len(probes)} encoded files", float("inf")
    wrong, worst = [], 0.0
    for (path, what, _), result in zip(probes, measured, strict=True):
        want = np.asarray(result["pixels"], np.float32)
        allowed = JPEG_TOLERANCE if path.suffix == ".jpeg" else PNG_TOLERANCE
        for entry in ("bytes", "classify"):
            got = np.asarray(result[entry], np.float32)
            difference = float(np.abs(got - want).max()) if got.shape == want.shape else float("inf")
            worst = max(worst, difference)
            if not (difference <= allowed and got.argmax() == want.argmax()):
                name = "serving_bytes" if entry == "bytes" else "classify"
                wrong.append(f"{name} on a {what} ({difference:.2g})")
    if wrong:
        return (
            False,
            f"encoded files disagree with serving_default on the pixels Pillow decodes (EXIF orientation "
            f"applied): {', '.join(wrong[:4])}{' …' if len(wrong) > 4 else ''} — allowed: the same top "
            f"class, probabilities within {JPEG_TOLERANCE:g} (JPEG) / {PNG_TOLERANCE:g} (PNG)",
            worst,
        )
    return True, f"{len(probes)} encoded files (EXIF orientations 1–8) agree within {worst:.1g}", worst
