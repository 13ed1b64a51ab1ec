"""TL Studio's data files, installed as the package ``tlstudio.resources`` (see setup.py).

Read them with ``importlib.resources.files("tlstudio.resources")`` (``tlstudio.resources_path``), never
relative to a source checkout: a wheel, pipx or a PyInstaller bundle has no checkout.
"""
