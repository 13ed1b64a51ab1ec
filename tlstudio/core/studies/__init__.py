"""Studies: many ordinary runs compared on one split (``tlstudio sweep``), driven by Optuna."""
