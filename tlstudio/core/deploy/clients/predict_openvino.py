"""Classify an image file with the OpenVINO IR beside this script: OpenVINO, Pillow and numpy alone.

    pip install openvino pillow numpy
    python predict_openvino.py IMAGE [IMAGE ...] [--top 3] [--json]

Written by TL Studio beside the exported model (model.xml and model.bin). The input size comes from
model.json, the labels from labels.txt (class names in the order of the output); for a multi-label
model, the labels at or above their thresholds in thresholds.json are printed.
"""

import argparse
import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

HERE = Path(__file__).resolve().parent


def load(path: str, size: int) -> np.ndarray:
    """The image as training saw it: upright (EXIF), RGB (transparency on white), size², bilinear."""
    with Image.open(path) as opened:
        if opened.format in ("JPEG", "MPO"):
            opened.draft("RGB", (size, size))
        opened.load()
        img: Image.Image = ImageOps.exif_transpose(opened)
    if img.mode in ("P", "PA", "RGBA", "LA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    img = img.convert("RGB")
    if img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return np.asarray(img, dtype=np.float32)[None]  # [1, size, size, 3], RGB 0-255


def model():
    """A function from one image's pixels [1, size, size, 3] to its probabilities (OpenVINO, CPU,
    float32 as verified)."""
    import sys

    # openvino's own stub: no usage events sent (None marks a module unimportable; typeshed allows
    # only modules in sys.modules)
    sys.modules.setdefault("openvino_telemetry", None)  # type: ignore[arg-type]
    import openvino as ov

    compiled = ov.Core().compile_model(str(HERE / "model.xml"), "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    return lambda pixels: compiled(pixels)[compiled.output(0)][0]


def thresholds_beside() -> dict[str, float] | None:
    """A multi-label model's threshold per label (thresholds.json beside it), or None."""
    path = HERE / "thresholds.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON line per image: label, probabilities")
    args = parser.parse_args()
    size = json.loads((HERE / "model.json").read_text(encoding="utf-8"))["input"]["image_size"]
    labels = (HERE / "labels.txt").read_text(encoding="utf-8").splitlines()
    thresholds = thresholds_beside()
    predict = model()
    for image in args.images:
        probs = predict(load(image, size))
        ranked = [int(i) for i in np.argsort(-probs)[: args.top]]
        if thresholds is not None:  # multi-label: every label at or above its threshold
            ranked = [int(i) for i in np.argsort(-probs) if probs[i] >= thresholds[labels[i]]]
        if args.json:
            scores = dict(zip(labels, probs.tolist(), strict=True))
            found = {"labels": [labels[i] for i in ranked]} if thresholds is not None else {}
            top = labels[int(np.argmax(probs))]
            print(json.dumps({"image": image, "label": top, **found, "probabilities": scores}))
        else:
            if len(args.images) > 1:
                print(image)
            for i in ranked:
                print(f"{labels[i]}\t{probs[i]:.3f}")
            if thresholds is not None and not ranked:
                print("(no label at or above its threshold)")


if __name__ == "__main__":
    main()
