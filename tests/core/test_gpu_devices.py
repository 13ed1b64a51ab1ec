"""The GPU without a GPU: device choice, the mixed-precision rule, NVML readings and running out of
memory, tested on the CPU with stand-in devices, a stand-in NVML and injected errors."""

from __future__ import annotations

import json
import threading

import pytest
import tensorflow as tf
from factory import FakeNvml
from test_training import Recorder, settings_for

from tlstudio.core import events as ev
from tlstudio.core.settings import TrainSettings
from tlstudio.core.training import devices, gpu_monitor, memory, phases
from tlstudio.core.training.devices import Gpu
from tlstudio.core.training.failures import TrainingError
from tlstudio.core.training.session import TrainingSession

AMPERE = Gpu(0, "NVIDIA A100", (8, 0), 81920)
PASCAL = Gpu(1, "NVIDIA GTX 1080", (6, 1), 8192)


def oom(shape="[32,112,112,64]") -> tf.errors.ResourceExhaustedError:
    return tf.errors.ResourceExhaustedError(None, None, f"OOM when allocating tensor with shape{shape}")


@pytest.mark.parametrize(
    ("setting", "device", "strategy", "gpus", "expected"),
    [
        ("auto", "auto", "default", [], False),  # CPU
        ("auto", "auto", "default", [AMPERE], True),  # tensor cores
        ("auto", "gpu:1", "default", [AMPERE, PASCAL], False),  # the chosen GPU has none
        ("auto", "gpu:0", "default", [AMPERE, PASCAL], True),
        ("auto", "auto", "mirrored", [AMPERE, PASCAL], False),  # every GPU must have them
        ("auto", "cpu", "default", [AMPERE], False),
        ("on", "auto", "default", [], True),  # the user's choice stands, even on a CPU
        ("off", "auto", "default", [AMPERE], False),
    ],
)
def test_mixed_precision_rule(setting, device, strategy, gpus, expected):
    on, why = devices.use_mixed_precision(setting, device, strategy, gpus)
    assert on is expected and why
    assert devices.precision_words(on, why).startswith("mixed float16" if on else "float32")


def test_a_device_this_machine_lacks_is_refused_naming_the_ones_it_has():
    devices.check_device("gpu:0", "default", [AMPERE])
    devices.check_device("cpu", "mirrored", [])
    with pytest.raises(TrainingError, match=r"no GPU 1 here .*A100"):
        devices.check_device("gpu:1", "default", [AMPERE])
    with pytest.raises(TrainingError, match="choose one"):
        devices.check_device("gpu:0", "mirrored", [AMPERE])
    assert devices.describe_device("gpu:1", [AMPERE, PASCAL]).startswith("GPU 1: NVIDIA GTX 1080 (8 GiB")
    assert devices.describe_device("auto", []) == "CPU"


def test_gpus_are_listed_with_name_capability_and_nvml_memory(monkeypatch):
    fake = [tf.config.PhysicalDevice("/physical_device:GPU:0", "GPU")]
    monkeypatch.setattr(tf.config, "list_physical_devices", lambda kind=None: fake if kind == "GPU" else [])
    monkeypatch.setattr(
        tf.config.experimental,
        "get_device_details",
        lambda d: {"device_name": "NVIDIA L4", "compute_capability": (8, 9)},
    )
    monkeypatch.setattr(gpu_monitor, "_nvml", lambda: FakeNvml())
    (gpu,) = devices.list_gpus()
    assert gpu == Gpu(0, "NVIDIA L4", (8, 9), 16384)
    assert gpu.describe() == "GPU 0: NVIDIA L4 (16 GiB, compute 8.9)"
    assert json.loads(json.dumps(gpu.to_dict()))["compute_capability"] == [8, 9]


def test_without_nvml_nothing_is_sampled(monkeypatch):
    def missing(name):
        raise ModuleNotFoundError(name)

    monkeypatch.setattr(gpu_monitor.importlib, "import_module", missing)
    assert gpu_monitor.read() == [] and gpu_monitor.total_memory_mb() == {}
    sampler = gpu_monitor.Sampler(lambda s: None)
    assert not sampler.available
    sampler.start()  # does nothing, starts no thread
    sampler.stop()


def test_the_sampler_reads_every_gpu_off_the_calling_thread_and_stops():
    got: list[tuple[str, list]] = []
    seen = threading.Event()

    def on_sample(samples):
        got.append((threading.current_thread().name, samples))
        seen.set()

    sampler = gpu_monitor.Sampler(on_sample, interval=0.01, nvml=FakeNvml())
    sampler.start()
    assert seen.wait(5)
    sampler.stop()
    thread, samples = got[0]
    assert thread == "tlstudio-gpu-sampler"
    assert [(s.index, s.utilisation, s.memory_used_mb) for s in samples] == [(0, 87, 1024), (1, 3, 2048)]
    assert gpu_monitor.describe(samples) == (
        "GPU 0: 87% busy, 1.0 of 16.0 GiB · GPU 1: 3% busy, 2.0 of 16.0 GiB"
    )
    assert not any(t.name == "tlstudio-gpu-sampler" for t in threading.enumerate())


def test_out_of_memory_is_recognised_also_when_wrapped():
    assert memory.is_out_of_memory(oom())
    try:
        try:
            raise oom()
        except tf.errors.ResourceExhaustedError as err:
            raise RuntimeError("Graph execution error") from err
    except RuntimeError as wrapped:
        assert memory.is_out_of_memory(wrapped)
    assert memory.is_out_of_memory(RuntimeError("CUDA_ERROR_OUT_OF_MEMORY: out of memory"))
    assert not memory.is_out_of_memory(ValueError("shapes do not match"))


def test_an_auto_batch_size_halves_boundedly_and_a_chosen_one_never():
    s = TrainSettings(backbone="x", batch_size=32)
    sizes = []
    for halvings in range(10):
        s = memory.smaller_batch(s, halvings)
        if s is None:
            break
        sizes.append(s.batch_size)
    assert sizes == [16, 8, 4, 2, 1]
    assert memory.smaller_batch(TrainSettings(backbone="x", batch_size=512), memory.MAX_HALVINGS) is None
    assert memory.smaller_batch(TrainSettings(backbone="x", batch_size=32, auto_batch_size=False), 0) is None
    # on a cluster one worker alone must not change the batch (the others would wait at other steps)
    assert memory.smaller_batch(TrainSettings(backbone="x", batch_size=32), 0, cluster=True) is None


def inject_oom(monkeypatch, fits_at: int, where=phases, name="run_recipe"):
    """The GPU 'fits' only batches of ``fits_at`` images or fewer."""
    original = getattr(where, name)

    def run(session, *args, **kwargs):
        if session.settings.batch_size > fits_at:
            raise oom(f"[{session.settings.batch_size},32,32,16]")
        return original(session, *args, **kwargs)

    monkeypatch.setattr(where, name, run)


@pytest.mark.slow
def test_out_of_memory_with_an_auto_batch_size_halves_and_the_run_completes(
    monkeypatch, colour_data, tiny_backbone_file, tmp_path
):
    inject_oom(monkeypatch, fits_at=8)
    rec = Recorder()
    s = settings_for(tiny_backbone_file, batch_size=32, fine_tune_epochs=0, epochs=2)
    result = TrainingSession(s, colour_data, tmp_path / "run", on_event=rec).run()
    assert result.status == "completed", result.error
    assert [(e.old, e.new) for e in rec.of(ev.BatchSizeReduced)] == [(32, 16), (16, 8)]
    assert "OOM when allocating" in rec.of(ev.BatchSizeReduced)[0].message
    assert json.loads((tmp_path / "run" / "settings.json").read_text())["batch_size"] == 8
    assert json.loads((tmp_path / "run" / "run.json").read_text())["batch_size"] == 8
    assert (tmp_path / "run" / "saved_model" / "saved_model.pb").is_file()


@pytest.mark.slow
def test_out_of_memory_with_a_chosen_batch_size_fails_with_advice_and_keeps_the_checkpoint(
    monkeypatch, colour_data, tiny_backbone_file, tmp_path
):
    inject_oom(monkeypatch, fits_at=8, name="run_fit_phase")  # after the probe saved its checkpoint
    rec = Recorder()
    s = settings_for(tiny_backbone_file, batch_size=16, auto_batch_size=False, fine_tune_epochs=2)
    result = TrainingSession(s, colour_data, tmp_path / "run", on_event=rec).run()
    assert result.status == "failed" and not rec.of(ev.BatchSizeReduced)
    (failed,) = rec.of(ev.RunFailed)
    assert "out of memory on CPU at batch size 16 with 32 px images" in failed.error
    assert "lower the batch size" in failed.error and failed.checkpoint
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["status"] == "failed" and run["checkpoint"]
