"""Where a backbone comes from, decided without importing Keras: the hub-handle check and the
error every backbone builder raises (shared by the registry and the SavedModel loader)."""

from __future__ import annotations

HUB_PREFIXES = ("https://tfhub.dev/", "https://www.kaggle.com/models/", "https://kaggle.com/models/")


class BackboneError(Exception):
    """A backbone that cannot be built, with a message that says what to do."""


def is_hub_handle(text: str) -> bool:
    """Whether ``text`` looks like a TF Hub / Kaggle Models handle.

    Args:
        text: what the user typed as the backbone.

    Returns:
        True for an https handle of TF Hub or Kaggle Models.
    """
    return text.startswith(HUB_PREFIXES)
