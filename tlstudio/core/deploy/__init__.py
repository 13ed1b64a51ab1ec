"""Exports: the SavedModel serving raw images, TFLite/ONNX/TF Serving conversions, runtime checks."""
