"""Packaging beyond pyproject.toml: the top-level ``resources/`` folder ships as ``tlstudio.resources``.

pyproject's ``packages.find`` cannot add a package that lives outside ``tlstudio/``; everything else
(metadata, dependencies, package data) is in ``pyproject.toml``.
"""

from setuptools import find_packages, setup

setup(
    packages=[*find_packages(include=["tlstudio", "tlstudio.*"]), "tlstudio.resources"],
    package_dir={"tlstudio.resources": "resources"},
)
