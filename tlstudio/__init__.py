"""TL Studio: transfer learning on images with Keras, as a desktop app and a headless CLI."""

__version__ = "0.1.0"
