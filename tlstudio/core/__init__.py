"""Headless core of TL Studio. Nothing in this package imports Qt."""
