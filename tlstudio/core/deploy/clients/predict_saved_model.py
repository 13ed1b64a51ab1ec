"""Classify an image file with the SavedModel beside this script: TensorFlow and numpy alone.

    pip install tensorflow numpy
    python predict_saved_model.py IMAGE [IMAGE ...] [--top 3] [--json]

Written by TL Studio beside the exported model. The file's bytes go to the ``serving_bytes``
signature, which decodes, turns upright and resizes inside (as TF Serving's REST clients send them);
the labels come from labels.txt (class names in the order of the output); for a multi-label model,
the labels at or above their thresholds in thresholds.json are printed.
"""

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def model():
    """A function from an image file to its probabilities: the file's bytes go to ``serving_bytes``,
    which decodes, turns upright and resizes inside the SavedModel."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(HERE / "saved_model")).signatures["serving_bytes"]

    def predict(image: str) -> np.ndarray:
        return signature(image_bytes=tf.constant([Path(image).read_bytes()]))["probabilities"].numpy()[0]

    return predict


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
    labels = (HERE / "labels.txt").read_text(encoding="utf-8").splitlines()
    thresholds = thresholds_beside()
    predict = model()
    for image in args.images:
        probs = predict(image)
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
