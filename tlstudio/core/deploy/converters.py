"""Converters from a trained Keras classifier to deployment files: LiteRT, ONNX, a TF Serving SavedModel.

Every converter starts from a fixed-size function — float32 pixels [batch, size, size, 3], RGB 0–255,
the preprocessing inside — which every runtime can run without resize or string ops. The TF Serving
SavedModel adds what TF Serving users need: the classify method and encoded-image input.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tlstudio.core.deploy.exif import decode_upright
from tlstudio.core.deploy.export import fit_to_size
from tlstudio.core.results import run_folder as files

ONNX_OPSET = 17


def _fixed_spec(image_size: int, dtype=tf.float32, name: str = "images") -> tf.TensorSpec:
    return tf.TensorSpec([None, image_size, image_size, 3], dtype, name=name)


def _fixed_saved_model(model: keras.Model, path: Path, image_size: int) -> None:
    """A SavedModel with one fixed-size float32 signature (the converters' input)."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default",
        lambda images: model(images, training=False),
        input_signature=[_fixed_spec(image_size)],
    )
    archive.write_out(str(path), verbose=False)


def to_tflite(
    model: keras.Model,
    path: Path,
    image_size: int,
    quantize: str = "float32",
    calibration: np.ndarray | None = None,
    uint8_io: bool = False,
    labels: list[str] | None = None,
    thresholds: list[float] | None = None,
) -> None:
    """Write ``path`` (a ``.tflite`` file) with the LiteRT converter; ``labels`` go inside it as TFLite
    metadata (``tflite_metadata.embed_labels``).

    Args:
        quantize: ``float32``, ``float16`` (weights in half precision), ``dynamic`` (int8 weights,
            float activations) or ``int8`` (full integer, ranges from ``calibration``).
        calibration: uint8 images [n, size, size, 3] for ``int8``.
        uint8_io: ``int8`` only: uint8 input and output tensors instead of float32.
        labels: class names in output order (None: no metadata).
    """
    with tempfile.TemporaryDirectory(prefix="tlstudio-tflite-") as tmp:
        _fixed_saved_model(model, Path(tmp) / "fixed", image_size)
        converter = tf.lite.TFLiteConverter.from_saved_model(str(Path(tmp) / "fixed"))
        if quantize != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if quantize == "float16":
            converter.target_spec.supported_types = [tf.float16]
        elif quantize == "int8":
            if calibration is None or not len(calibration):
                raise ValueError("int8 needs calibration images (the run's training images)")

            def representative():
                for image in calibration:
                    yield [image[None].astype(np.float32)]

            converter.representative_dataset = representative
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if uint8_io:
                converter.inference_input_type = tf.uint8
                converter.inference_output_type = tf.uint8
        converted = converter.convert()
    if labels is not None:
        from tlstudio.core.deploy.tflite_metadata import embed_labels

        converted = embed_labels(converted, labels, image_size=image_size, thresholds=thresholds)
    Path(path).write_bytes(converted)


def to_onnx(model: keras.Model, path: Path, image_size: int) -> None:
    """Write ``path`` (a ``.onnx`` file) with tf2onnx from the fixed-size function (dynamic batch).

    The function is frozen here rather than by ``tf2onnx.convert.from_function``: that one lists a
    captured constant (KerasHub's ViT position ids) as a model input the runtime then asks for.
    """
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    function = tf.function(lambda images: model(images, training=False), autograph=False)
    concrete = function.get_concrete_function(_fixed_spec(image_size))
    frozen = convert_variables_to_constants_v2(concrete, lower_control_flow=False, aggressive_inlining=True)
    inputs = [t.name for t in frozen.inputs if t.dtype != tf.resource]
    outputs = [t.name for t in frozen.outputs]
    with tf.device("/cpu:0"):
        tf2onnx.convert.from_graph_def(
            frozen.graph.as_graph_def(add_shapes=True),
            input_names=inputs,
            output_names=outputs,
            opset=ONNX_OPSET,
            custom_op_handlers={"Erfc": (_erfc_as_one_minus_erf, [])},
            tensors_to_rename={inputs[0]: "images", outputs[0]: "probabilities"},
            output_path=str(path),
        )


def _erfc_as_one_minus_erf(ctx, node, name, args):
    """tf2onnx 1.17 has no handler for TF's ``Erfc`` (exact GELU, as in KerasHub's transformers
    and Keras' ``gelu``): write it as ``1 - Erf(x)`` with ONNX's own ``Erf``."""
    dtype = ctx.get_dtype(node.input[0])
    import onnx.helper

    one = ctx.make_const(f"{name}_one", np.array(1, dtype=onnx.helper.tensor_dtype_to_np_dtype(dtype)))
    erf = ctx.make_node("Erf", [node.input[0]], op_name_scope=name)
    node.type = "Sub"
    ctx.replace_inputs(node, [one.output[0], erf.output[0]])
    return node


def serving_saved_model(model: keras.Model, path: Path, labels: list[str], image_size: int) -> None:
    """A SavedModel for TF Serving: ``serving_default`` / ``serving_uint8`` (pixels, any size),
    ``serving_bytes`` (encoded image files) and ``classify`` (the classify method: serialized
    ``tf.Example`` with ``image/encoded`` → ``classes``, ``scores``). Encoded images are decoded as
    training decodes them: turned upright by their EXIF orientation (TF ops only, ``exif.py``), JPEGs
    with the accurate DCT (Pillow's pixels).

    Not meant for the TFLite converter (decoding images and parsing examples are not builtin ops);
    the run's own ``saved_model/`` is the convertible one.
    """
    table = tf.constant(labels)

    def probabilities(images):
        return model(fit_to_size(images, image_size), training=False)

    def decode(data):
        def one(encoded):
            # upright as training decodes it (EXIF orientation applied, Pillow's JPEG pixels)
            return fit_to_size(decode_upright(encoded)[None], image_size)[0]

        return tf.map_fn(
            one, data, fn_output_signature=tf.TensorSpec([image_size, image_size, 3], tf.float32)
        )

    def from_bytes(image_bytes):
        probs = model(decode(image_bytes), training=False)
        index = tf.argmax(probs, axis=-1, output_type=tf.int32)
        return {"probabilities": probs, "class_index": index, "label": tf.gather(table, index)}

    def classify(inputs):
        features = tf.io.parse_example(inputs, {"image/encoded": tf.io.FixedLenFeature([], tf.string)})
        probs = model(decode(features["image/encoded"]), training=False)
        classes = tf.tile(table[None], [tf.shape(probs)[0], 1])
        return {"classes": classes, "scores": probs}

    archive = keras.export.ExportArchive()
    archive.track(model)
    any_size = tf.TensorSpec([None, None, None, 3], tf.float32, name="images")
    archive.add_endpoint("serving_default", probabilities, input_signature=[any_size])
    archive.add_endpoint(
        "serving_uint8",
        probabilities,
        input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
    )
    archive.add_endpoint(
        "serving_bytes", from_bytes, input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")]
    )
    archive.add_endpoint(
        "classify", classify, input_signature=[tf.TensorSpec([None], tf.string, name="inputs")]
    )
    archive.write_out(str(path), verbose=False)
    _mark_classify_method(path / "saved_model.pb")
    (path / "assets").mkdir(exist_ok=True)
    (path / "assets" / files.LABELS).write_text("\n".join(labels) + "\n", encoding="utf-8")


def _mark_classify_method(pb: Path) -> None:
    """TF 2 saves every signature with the predict method; TF Serving's classify API needs the
    classify method name on that signature (and the input key ``inputs``)."""
    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(pb.read_bytes())
    for graph in proto.meta_graphs:
        if "classify" in graph.signature_def:
            graph.signature_def["classify"].method_name = "tensorflow/serving/classify"
    pb.write_bytes(proto.SerializeToString())
