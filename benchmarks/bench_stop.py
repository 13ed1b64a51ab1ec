"""How long does Stop take when it is pressed during a phase's first batch?

Run:  python benchmarks/bench_stop.py [--backbone EfficientNetB0] [--image-size 224] [--repeats 2]

A real Keras Applications network (random weights, saved as a model file: no download, and the
default two-phase recipe as for a pretrained backbone) is trained on small generated images. Stop
is asked for 0.5 s after the fine-tuning phase starts, while Keras traces that phase's first train
step, and measured side by side, with the first-batch interrupt (``core/training/interrupt.py``)
and with it switched off (Stop then waits for the first batch to end, as before): the seconds from
the request to the end of the fine-tuning ``fit`` (the "Finishing" event), and to the end of the
run (the probe's best weights evaluated and exported included).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))


def backbone_file(name: str, size: int, folder: Path) -> Path:
    """The network with random weights as a model file (a backbone that brings its own weights)."""
    import keras

    net = getattr(keras.applications, name)(
        weights=None, include_top=False, pooling="avg", input_shape=(size, size, 3)
    )
    path = folder / f"{name}.keras"
    net.save(path)
    return path


def one_run(backbone: str, size: int, data: Path, interrupt: bool) -> tuple[float, float, str]:
    from tlstudio.core import events as ev
    from tlstudio.core.settings import Augmentation, TrainSettings
    from tlstudio.core.training import interrupt as module
    from tlstudio.core.training.session import TrainingSession

    stop = threading.Event()
    asked: list[float] = []
    fit_over: list[float] = []

    def on_event(event):
        if isinstance(event, ev.PhaseStarted) and event.phase == "fine-tune" and not asked:

            def ask():
                asked.append(time.perf_counter())
                stop.set()

            threading.Timer(0.5, ask).start()
        if isinstance(event, ev.Finishing) and asked and not fit_over:
            fit_over.append(time.perf_counter())

    arm = module.FirstBatchInterrupt.arm
    if not interrupt:
        module.FirstBatchInterrupt.arm = lambda self: None
    try:
        settings = TrainSettings(
            backbone=backbone,
            image_size=size,
            batch_size=16,
            augmentation=Augmentation(False, 0.0),
        )
        with tempfile.TemporaryDirectory() as out:
            result = TrainingSession(settings, data, Path(out) / "run", on_event=on_event, stop=stop).run()
    finally:
        module.FirstBatchInterrupt.arm = arm
    end = time.perf_counter()
    if not asked:
        return float("nan"), float("nan"), result.status
    return end - asked[0], (fit_over[0] if fit_over else end) - asked[0], result.status


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backbone", default="EfficientNetB0")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    from factory import make_colour_dataset

    with tempfile.TemporaryDirectory() as tmp:
        data = make_colour_dataset(Path(tmp) / "data", per_class=16, size=args.image_size)
        net = str(backbone_file(args.backbone, args.image_size, Path(tmp)))
        rows = {True: [], False: []}
        for _ in range(args.repeats):
            for interrupt in (True, False):
                rows[interrupt].append(one_run(net, args.image_size, data, interrupt))
    print(
        f"{args.backbone} at {args.image_size} px (a model file, random weights), "
        "Stop 0.5 s into the fine-tuning phase"
    )
    print(f"{'':<38} {'to the run end':>15} {'to the fit end':>15}  status")
    for interrupt, label in (
        (False, "Stop waits for the first batch (before)"),
        (True, "first-batch interrupt (now)"),
    ):
        ends = [r[0] for r in rows[interrupt]]
        fits = [r[1] for r in rows[interrupt]]
        status = ",".join(sorted({r[2] for r in rows[interrupt]}))
        print(f"{label:<38} {statistics.median(ends):>13.1f} s {statistics.median(fits):>13.2f} s  {status}")
    before = statistics.median(r[1] for r in rows[False])
    now = statistics.median(r[1] for r in rows[True])
    print(f"\nStop to the end of fit: {before / max(now, 1e-9):.0f}× sooner with the interrupt")


if __name__ == "__main__":
    main()
