"""One source for every default: the CLI, the desktop app and the settings dataclasses agree."""

from __future__ import annotations

from tlstudio.cli import build_parser, settings_from_args
from tlstudio.core.data.split import SplitConfig
from tlstudio.core.settings import TrainSettings, defaults


def test_cli_defaults_are_the_dataclass_defaults():
    args = build_parser().parse_args(["train", "data", "--backbone", "b", "--out", "o"])
    from_cli = settings_from_args(args)
    assert from_cli == defaults().but(backbone="b")
    split = SplitConfig()
    assert (args.val, args.test, args.seed) == (split.val_fraction, split.test_fraction, split.seed)
    assert (split.val_fraction, split.test_fraction, split.seed) == (
        from_cli.val_fraction,
        from_cli.test_fraction,
        from_cli.seed,
    )


def test_cli_help_shows_the_dataclass_defaults(capsys):
    import pytest

    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    d = defaults()
    for shown in (
        f"({d.epochs})",
        f"(auto: {d.batch_size},",
        f"({d.early_stopping_patience})",
        f"({d.head.dropout})",
    ):
        assert shown in text, shown


def test_the_train_panel_round_trips_every_field_it_shows(qtbot):
    from tlstudio.gui.train_panel import TrainPanel

    panel = TrainPanel()
    qtbot.addWidget(panel)
    base = defaults().but(backbone="b")
    panel.show_settings(base)
    assert panel.apply_to(base) == base  # defaults shown as they are
    changed = base.but(
        epochs=7, fine_tune_epochs=4, batch_size=16, early_stopping_patience=3, learning_rate=3e-3
    )
    panel.show_settings(changed)
    assert panel.apply_to(TrainSettings(backbone="b")) == changed


def test_the_train_panel_keeps_what_it_does_not_show(qtbot):
    from tlstudio.core.settings import Augmentation
    from tlstudio.gui.train_panel import TrainPanel

    panel = TrainPanel()
    qtbot.addWidget(panel)
    s = defaults().but(
        backbone="b", strategy="multiworker", augmentation=Augmentation(contrast=0.3), interpolate=False
    )
    panel.show_settings(s)
    assert panel.apply_to(s) == s


def test_fresh_panels_start_at_the_dataclass_defaults(qtbot):
    """Every panel's widgets start where the settings dataclasses do: a new project reads back as the
    defaults without any panel having been shown settings."""
    from tlstudio.gui.data_panel import DataPanel
    from tlstudio.gui.layers_panel import LayersPanel
    from tlstudio.gui.train_panel import TrainPanel

    base = defaults().but(backbone="b")
    for panel in (DataPanel(), LayersPanel(), TrainPanel()):
        qtbot.addWidget(panel)
        assert panel.apply_to(base) == base, type(panel).__name__
