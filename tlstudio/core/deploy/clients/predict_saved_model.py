"""Classify an image file with the SavedModel beside this script: TensorFlow and numpy alone.

    pip install tensorflow numpy
    python predict_saved_model.py IMAGE [IMAGE ...] [--top 3] [--json]

Written by TL Studio beside the exported model. The file's bytes go to the ``serving_bytes``
signature, which decodes, turns upright and resizes inside (as TF Serving's REST clients send them);
the labels come from labels.txt (class names in the order of the output).
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("images", nargs="+", metavar="IMAGE")
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="one JSON line per image: label, probabilities")
    args = parser.parse_args()
    labels = (HERE / "labels.txt").read_text(encoding="utf-8").splitlines()
    predict = model()
    for image in args.images:
        probs = predict(image)
        ranked = np.argsort(-probs)[: args.top]
        if args.json:
            scores = dict(zip(labels, probs.tolist(), strict=True))
            print(json.dumps({"image": image, "label": labels[ranked[0]], "probabilities": scores}))
        else:
            if len(args.images) > 1:
                print(image)
            for i in ranked:
                print(f"{labels[i]}\t{probs[i]:.3f}")


if __name__ == "__main__":
    main()
