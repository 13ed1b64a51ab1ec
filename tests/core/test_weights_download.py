"""ImageNet weights on request, against a local HTTP server: progress, checksum, cancel, resume."""

from __future__ import annotations

import hashlib
import threading

import pytest
from served_file import serve_file

from tlstudio.core.backbone.weights import (
    WeightsCancelled,
    WeightsError,
    WeightsFile,
    download,
    imagenet_weights_file,
    install_local,
)

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB
SHA256 = hashlib.sha256(PAYLOAD).hexdigest()


REQUESTS: list[str | None] = []  # the Range header of each request to the running server


@pytest.fixture
def server():
    global REQUESTS
    with serve_file(PAYLOAD) as (url, REQUESTS):
        yield url


def weights(server, tmp_path, file_hash=SHA256):
    return WeightsFile(f"{server}/w.h5", "w.h5", file_hash, tmp_path / "models")


def test_a_download_reports_progress_checks_the_hash_and_lands_in_the_cache(server, tmp_path):
    seen = []
    path = download(weights(server, tmp_path), progress=lambda n, total: seen.append((n, total)))
    assert path.read_bytes() == PAYLOAD and path == tmp_path / "models" / "w.h5"
    assert seen[-1] == (len(PAYLOAD), len(PAYLOAD)) and len(seen) > 1
    assert not (tmp_path / "models" / "w.h5.part").exists()
    REQUESTS.clear()
    assert download(weights(server, tmp_path)) == path and REQUESTS == []  # cached: no request


def test_cancel_keeps_the_part_and_the_next_try_resumes_from_it(server, tmp_path):
    stop = threading.Event()

    def progress(n, total):
        if n >= len(PAYLOAD) // 4:
            stop.set()

    w = weights(server, tmp_path)
    with pytest.raises(WeightsCancelled):
        download(w, progress=progress, stop=stop)
    kept = w.part.stat().st_size
    assert 0 < kept < len(PAYLOAD) and not w.path.exists()
    assert download(w).read_bytes() == PAYLOAD
    assert REQUESTS[-1] == f"bytes={kept}-"  # resumed, not started again


def test_a_wrong_checksum_leaves_nothing_and_says_so(server, tmp_path):
    w = weights(server, tmp_path, file_hash="0" * 64)
    with pytest.raises(WeightsError, match="checksum"):
        download(w)
    assert not w.path.exists() and not w.part.exists()
    md5 = weights(server, tmp_path, file_hash=hashlib.md5(PAYLOAD).hexdigest())  # Keras ships MD5s too
    assert download(md5).read_bytes() == PAYLOAD


def test_no_server_gives_the_cause_and_the_offline_way(tmp_path):
    w = WeightsFile("http://127.0.0.1:9/w.h5", "w.h5", None, tmp_path / "models")
    with pytest.raises(WeightsError, match="could not download") as err:
        download(w, timeout=2)
    assert "--from FILE" in str(err.value)


def test_a_local_file_is_checked_then_copied_into_the_cache(tmp_path):
    w = WeightsFile("http://unused/w.h5", "w.h5", hashlib.sha256(PAYLOAD).hexdigest(), tmp_path / "models")
    good, bad = tmp_path / "good.h5", tmp_path / "bad.h5"
    good.write_bytes(PAYLOAD)
    bad.write_bytes(b"something else")
    with pytest.raises(WeightsError, match="checksum differs"):
        install_local(w, bad)
    assert install_local(w, good).read_bytes() == PAYLOAD and w.is_cached()


def test_keras_is_asked_which_file_it_wants_without_downloading(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    w = imagenet_weights_file("MobileNetV3Small")
    assert w.url.startswith("https://") and w.name.endswith(".h5") and w.name in w.url
    assert len(w.file_hash) in (32, 64) and w.cache_dir == tmp_path / "keras" / "models"
    assert not w.path.exists()
    with pytest.raises(WeightsError, match="not a Keras Applications"):
        imagenet_weights_file("NoSuchNet")


def test_a_run_whose_imagenet_weights_cannot_be_had_fails_before_it_claims_a_folder(
    server, tmp_path, monkeypatch, colour_data, tiny_backbone_file
):
    """The weights are fetched (here from the local server) before the run folder is claimed; when
    that fails, the run says what to do and leaves no failed run folder behind."""
    from tlstudio.core.backbone import weights as weights_module
    from tlstudio.core.backbone.sources import BackboneError
    from tlstudio.core.settings import TrainSettings
    from tlstudio.core.training.session import TrainingSession

    wanted = weights(server, tmp_path)
    monkeypatch.setattr(weights_module, "imagenet_weights_file", lambda name, size=None: wanted)
    weights_module.ensure_imagenet_weights("MobileNetV3Small", "imagenet", 96)
    assert wanted.is_cached()  # downloaded on the way in
    weights_module.ensure_imagenet_weights(str(tiny_backbone_file), "imagenet", 96)  # a file: its own
    weights_module.ensure_imagenet_weights("MobileNetV3Small", "none", 96)  # from scratch: nothing

    gone = WeightsFile("http://127.0.0.1:9/w.h5", "other.h5", SHA256, tmp_path / "models")
    monkeypatch.setattr(weights_module, "imagenet_weights_file", lambda name, size=None: gone)
    with pytest.raises(BackboneError, match=r"not in .* and could not be downloaded"):
        weights_module.ensure_imagenet_weights("MobileNetV3Small", "imagenet", 96)
    run = tmp_path / "run"
    result = TrainingSession(
        TrainSettings(backbone="MobileNetV3Small", image_size=96), colour_data, run
    ).run()
    assert result.status == "failed" and "tlstudio weights MobileNetV3Small" in result.error
    assert not run.exists()


def test_without_a_keras_checksum_only_an_hdf5_file_is_taken(tmp_path):
    import h5py

    w = WeightsFile("http://unused/w.h5", "w.h5", None, tmp_path / "models")  # Keras ships no hash
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"hello")
    with pytest.raises(WeightsError, match="not an HDF5 weights file"):
        install_local(w, junk)
    assert not w.is_cached() and w.check.startswith("an HDF5 file")
    real = tmp_path / "real.h5"
    with h5py.File(real, "w") as f:
        f["w"] = [1.0, 2.0]
    assert install_local(w, real).is_file() and w.is_cached()
    w.path.write_bytes(b"<html>an error page</html>")  # a junk file already in the cache
    assert not w.is_cached()
