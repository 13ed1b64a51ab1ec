"""Pretrained backbones:
where they come from, building them, the classifier on top, the layer tree, freezing.
"""
