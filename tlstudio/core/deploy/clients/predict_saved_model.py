"""Classify an image file with the SavedModel beside this script: TensorFlow and numpy alone.

    pip install tensorflow numpy
    python predict_saved_model.py IMAGE [--top 3] [--json]

Written by TL Studio beside the exported model. The file's bytes go to the ``serving_bytes``
signature, which decodes, turns upright and resizes inside (as TF Serving's REST clients send them);
the labels come from labels.txt (class names in the order of the output).
"""

import argparse
import json
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def probabilities(image: str) -> np.ndarray:
    """The model's probabilities for an encoded image file (decoded inside the SavedModel)."""
    import tensorflow as tf

    signature = tf.saved_model.load(str(HERE / "saved_model")).signatures["serving_bytes"]
    return signature(image_bytes=tf.constant([Path(image).read_bytes()]))["probabilities"].numpy()[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("image")
    parser.add_argument("--top", type=int, default=3)
    parser.add_argument("--json", action="store_true", help="print the labels and probabilities as JSON")
    args = parser.parse_args()
    labels = (HERE / "labels.txt").read_text(encoding="utf-8").splitlines()
    probs = probabilities(args.image)
    ranked = np.argsort(-probs)[: args.top]
    if args.json:
        print(
            json.dumps(
                {"label": labels[ranked[0]], "probabilities": dict(zip(labels, probs.tolist(), strict=True))}
            )
        )
    else:
        for i in ranked:
            print(f"{labels[i]}\t{probs[i]:.3f}")


if __name__ == "__main__":
    main()
