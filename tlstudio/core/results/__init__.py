"""A run's results: its folder and files, history, metrics, evaluation, the report, Grad-CAM."""
