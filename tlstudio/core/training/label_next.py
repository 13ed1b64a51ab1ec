"""What to label next: unlabelled images ranked by how much a label would teach a trained run.

Uncertainty (the margin between the run's two likeliest classes) picks a pool of the
``POOL_FACTOR`` × n least certain images; diversity then picks n of them one by one, each time the
image that is most uncertain *and* farthest (cosine distance of the run's backbone features) from
those already picked, so the list does not spend its labels on five copies of one confusing
picture. ``benchmarks/bench_active_learning.py`` measures it against random picks.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from tlstudio.core import atomic
from tlstudio.core.cancel import Cancelled
from tlstudio.core.data import relabel
from tlstudio.core.data.scan import PSEUDO_RECORD, STAGING_FOLDER, class_folder, in_folder, scan_unlabelled
from tlstudio.core.data.split import PSEUDO_FOLDER, Manifest
from tlstudio.core.results import run_folder as files
from tlstudio.core.settings import PSEUDO_LABEL_CONFIDENCE
from tlstudio.core.settings import SUGGEST_COUNT as DEFAULT_COUNT
from tlstudio.core.settings import SUGGEST_POOL_FACTOR as POOL_FACTOR

BATCH = 32


@dataclass(frozen=True)
class Suggestion:
    """An unlabelled image worth labelling, and what the run thinks of it now."""

    path: str  # relative to the unlabelled folder
    predicted: str
    confidence: float  # the run's probability of ``predicted``
    runner_up: str
    uncertainty: float  # 1 − (p₁ − p₂): 1 when the two likeliest classes tie

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return asdict(self)


@dataclass
class Suggestions:
    """The ranked list, the run's classes and the files that were not considered (with why)."""

    items: list  # Suggestion; a multi-label run's: label_next_multilabel.LabelSuggestion
    classes: list[str]
    considered: int
    skipped: list[dict[str, str]] = field(default_factory=list)
    confident: list = field(default_factory=list)  # candidates for pseudo-labels, surest first (as items)
    task: str = "single_label"  # the run's (``labels_csv.TaskKind``)

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form."""
        return {
            "suggestions": [s.to_dict() for s in self.items],
            "confident": [s.to_dict() for s in self.confident],
            "classes": self.classes,
            "considered": self.considered,
            "skipped": self.skipped,
            "task": self.task,
        }


def uncertainty(probs: np.ndarray) -> np.ndarray:
    """1 − margin between the two likeliest classes, per row (0: sure, 1: a tie)."""
    top = np.sort(probs, axis=1)[:, -2:]
    return 1.0 - (top[:, 1] - top[:, 0])


def select_to_label(
    probs: np.ndarray,
    features: np.ndarray,
    n: int,
    pool_factor: int = POOL_FACTOR,
    *,
    scores: np.ndarray | None = None,
) -> list[int]:
    """Indices of the ``n`` images to label next, best first (uncertain and diverse).

    Args:
        probs: (m, classes) the current model's probabilities of the unlabelled images.
        features: (m, d) their backbone features.
        n: how many to pick.
        pool_factor: the pool is the ``pool_factor`` × n most uncertain images.
        scores: (m,) each image's uncertainty in [0, 1] (default: ``uncertainty(probs)``; multi-label
            runs give ``label_next_multilabel.label_uncertainty``).

    Returns:
        Up to ``n`` row indices.
    """
    m = len(probs)
    n = min(n, m)
    if n <= 0:
        return []
    u = uncertainty(probs) if scores is None else np.asarray(scores, np.float64)
    pool = np.argsort(-u, kind="stable")[: max(n, pool_factor * n)]
    unit = features[pool] / np.maximum(np.linalg.norm(features[pool], axis=1, keepdims=True), 1e-12)
    picked = [0]  # the most uncertain first
    nearest = 1.0 - unit @ unit[0]  # cosine distance to the nearest picked image
    while len(picked) < n:
        score = u[pool] * np.maximum(nearest, 0.0)
        score[picked] = -1.0
        best = int(np.argmax(score))
        picked.append(best)
        nearest = np.minimum(nearest, 1.0 - unit @ unit[best])
    return [int(pool[i]) for i in picked]


def suggest(
    run_dir: str | os.PathLike[str],
    unlabelled_dir: str | os.PathLike[str],
    n: int = DEFAULT_COUNT,
    *,
    min_confidence: float = PSEUDO_LABEL_CONFIDENCE,
    stop: threading.Event | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Suggestions:
    """Rank the images of ``unlabelled_dir`` by what labelling them would teach the run's model.

    Images whose bytes are already in the run's data (its manifest) are skipped.

    Args:
        run_dir: a finished (or interrupted) run folder; its best checkpoint is used.
        unlabelled_dir: images without a class (sub-folders are searched too).
        n: how many to suggest.
        min_confidence: images the run is at least this sure of (and not suggested) are listed as
            ``confident``: candidates for pseudo-labels.
        stop: set to cancel (``core.cancel.Cancelled``).
        progress: ``progress(done, total)`` after each batch.

    Returns:
        The suggestions, best first (a multi-label run's: ``LabelSuggestion``, ``confident`` too).

    Raises:
        RestoreError: the run folder cannot be rebuilt.
        ValueError: no usable image to rank.
    """
    from tlstudio.core.data.imagefile import ImageProblem
    from tlstudio.core.data.pipeline import load_for_model
    from tlstudio.core.deploy.restore import classifier_from_run
    from tlstudio.core.training.feature_cache import feature_extractor, head_model

    model, classes, size, _ = classifier_from_run(run_dir)
    manifest = Manifest.load(Path(run_dir) / files.MANIFEST)
    known = {e.sha256: e.path for e in manifest.entries}
    scan = scan_unlabelled(unlabelled_dir)
    skipped = [{"path": x.path, "reason": x.reason} for x in scan.skipped]
    todo = []
    for record in scan.images:
        if record.sha256 in known:
            skipped.append(
                {"path": record.path, "reason": f"already labelled (same file as {known[record.sha256]})"}
            )
        else:
            todo.append(record.path)
    extractor = feature_extractor(model)
    head = head_model(model, extractor.output.shape[1:])
    feats, probs, kept = [], [], []
    for start in range(0, len(todo), BATCH):
        if stop is not None and stop.is_set():
            raise Cancelled("suggestion cancelled")
        pixels = []
        for rel in todo[start : start + BATCH]:
            try:
                pixels.append(load_for_model(in_folder(unlabelled_dir, rel), size))
                kept.append(rel)
            except (ImageProblem, OSError) as err:
                skipped.append({"path": rel, "reason": str(err)})
        if pixels:
            f = extractor(np.stack(pixels).astype(np.float32), training=False)
            feats.append(np.asarray(f).reshape(len(pixels), -1))
            probs.append(np.asarray(head(f, training=False), dtype=np.float64))
        if progress is not None:
            progress(min(start + BATCH, len(todo)), len(todo))
    if not kept:
        why = (
            f": {len(skipped)} skipped, e.g. {skipped[0]['path']} ({skipped[0]['reason']})" if skipped else ""
        )
        raise ValueError(f"no usable unlabelled image in {unlabelled_dir}{why}")
    p, f = np.concatenate(probs), np.concatenate(feats)
    skipped.sort(key=lambda x: x["path"])
    if manifest.multi_label:
        from tlstudio.core.training import label_next_multilabel as multi

        thresholds = multi.run_thresholds(run_dir, classes)
        picked = select_to_label(p, f, n, scores=multi.label_uncertainty(p, thresholds))
        items = [multi.describe(kept[i], p[i], classes, thresholds) for i in picked]
        shown = {kept[i] for i in picked}
        every_label_sure = multi.confident_images(kept, p, classes, thresholds, min_confidence)
        candidates = [x for x in every_label_sure if x.path not in shown]
        return Suggestions(items, classes, len(kept), skipped, candidates, task="multi_label")
    u = uncertainty(p)

    def described(i: int) -> Suggestion:
        first, second = np.argsort(p[i])[::-1][:2]
        return Suggestion(
            kept[i], classes[first], round(float(p[i, first]), 4), classes[second], round(float(u[i]), 4)
        )

    picked = select_to_label(p, f, n)
    sure = [int(i) for i in np.argsort(-p.max(1), kind="stable") if p[i].max() >= min_confidence]
    asked = set(picked)
    confident = [described(i) for i in sure if i not in asked]
    return Suggestions(
        [described(i) for i in picked],
        classes,
        len(kept),
        skipped,
        confident,
    )


def copy_pseudo_labels(
    data_dir: str | os.PathLike[str], unlabelled_dir: str | os.PathLike[str], confident: list[Suggestion]
) -> list[str]:
    """Copy confidently predicted images into ``data_dir/CLASS/pseudo-labels/`` (the originals stay).

    The split maker puts them (and their look-alikes) in train only; deleting those folders drops them.
    An image whose bytes are already in its class's pseudo-label folder is not copied again. Classes
    are found by their names in Unicode NFC (a folder copied from macOS spells them decomposed).

    All or nothing, kills included: every copy is first written into a staging folder in the data
    folder (``scan.STAGING_FOLDER``), then a plan of the moves is written, then the copies are moved
    into place and added to the data folder's record (``scan.PSEUDO_RECORD``). A process killed
    before the plan leaves only its staging folder, removed by the next call; one killed after it
    has its moves completed and recorded by the next call (``finish_interrupted_copies``).

    Args:
        data_dir: the data folder the run was trained on.
        unlabelled_dir: where the images are.
        confident: ``Suggestions.confident`` (or a part of it).

    Returns:
        The copies' paths relative to ``data_dir``.

    Raises:
        RelabelError: a copy failed (nothing was left behind), or ``data_dir`` lacks a predicted class.
    """
    from tlstudio.core.data.scan import file_sha256

    data = Path(data_dir)
    finish_interrupted_copies(data)
    folders = {label: class_folder(data, label) for label in {s.predicted for s in confident}}
    unknown = sorted(label for label, f in folders.items() if not f.is_dir() or f.is_symlink())
    if unknown:  # another data folder than the run's: a pseudo-label would start a class of its own
        raise relabel.RelabelError(
            f"{data_dir} has no class folder {', '.join(unknown)}: give the data folder the run was "
            "trained on (nothing was copied)"
        )
    if not confident:
        return []
    staging = data / f"{STAGING_FOLDER}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    staged: list[tuple[str, str]] = []  # (path in staging, class folder's name on disk)
    present: dict[str, set[str]] = {}
    try:
        staging.mkdir()
        for s in confident:
            folder = folders[s.predicted]
            if s.predicted not in present:
                pseudo = folder / PSEUDO_FOLDER
                present[s.predicted] = {file_sha256(p) for p in pseudo.glob("*") if p.is_file()}
            source = in_folder(unlabelled_dir, s.path)
            digest = file_sha256(source)
            if digest in present[s.predicted]:
                continue
            (staging / folder.name).mkdir(exist_ok=True)
            copy = relabel.copy_into_class(staging / folder.name, source, PSEUDO_FOLDER)
            staged.append((f"{folder.name}/{copy}", folder.name))
            present[s.predicted].add(digest)
        plan = _plan(data, staged)
        atomic.write_json(staging / _PLAN, {"from": str(unlabelled_dir), "moves": plan})
    except (relabel.RelabelError, OSError) as err:
        shutil.rmtree(staging, ignore_errors=True)
        raise relabel.RelabelError(f"pseudo-labels not copied ({err}); nothing was left behind") from err
    try:
        return _complete(data, staging)
    except OSError as err:
        _undo_moves(data, staging)
        raise relabel.RelabelError(f"pseudo-labels not copied ({err}); nothing was left behind") from err


def finish_interrupted_copies(data_dir: str | os.PathLike[str]) -> list[str]:
    """Complete or remove what a killed ``copy_pseudo_labels`` left in ``data_dir``: a staging folder
    with its plan written is completed (moved into place and recorded), one without is removed. A
    staging folder of a process still running is left alone.

    Returns:
        The copies put into place now (paths relative to ``data_dir``).
    """
    data = Path(data_dir)
    done: list[str] = []
    try:
        leftovers = sorted(p for p in data.iterdir() if p.name.startswith(STAGING_FOLDER + "-"))
    except OSError:
        return done
    for staging in leftovers:
        owner = staging.name[len(STAGING_FOLDER) + 1 :].split("-", 1)[0]
        if not owner.isdigit() or atomic.pid_alive(int(owner)) or not staging.is_dir():
            continue
        try:
            done += _complete(data, staging, strict=False)
        except (OSError, ValueError, KeyError, TypeError):  # killed before its plan was whole: no copy placed
            shutil.rmtree(staging, ignore_errors=True)
    return done


_PLAN = "plan.json"


def _plan(data: Path, staged: list[tuple[str, str]]) -> list[list[str]]:
    """[path in staging, free path in the data folder] for each staged copy."""
    taken: set[Path] = set()
    moves = []
    for rel, folder_name in staged:
        target = data / folder_name / PSEUDO_FOLDER / rel.rsplit("/", 1)[-1]
        n, candidate = 1, target
        while candidate.exists() or candidate in taken:
            candidate = target.with_name(f"{target.stem}-{n}{target.suffix}")
            n += 1
        taken.add(candidate)
        moves.append([rel, f"{folder_name}/{PSEUDO_FOLDER}/{candidate.name}"])
    return moves


def _complete(data: Path, staging: Path, *, strict: bool = True) -> list[str]:
    """Move the planned copies into place (those not moved yet), add them to the record, remove
    the staging folder. ``strict``: a move that fails raises (else that copy is dropped: the next
    call, finishing a killed one, places what it can)."""
    plan = json.loads((staging / _PLAN).read_text(encoding="utf-8"))
    placed = []
    for rel, target in plan["moves"]:
        src, dst = in_folder(staging, rel), in_folder(data, target)
        try:
            if src.is_file():
                dst.parent.mkdir(exist_ok=True)
                if dst.exists():  # taken meanwhile by another file: never overwritten
                    dst = relabel.free_name(dst)
                    target = f"{target.rsplit('/', 1)[0]}/{dst.name}"
                os.rename(src, dst)
        except OSError:
            if strict:
                raise
        if dst.is_file():
            placed.append(target)
    _record(data, staging.name, plan.get("from"), placed)
    shutil.rmtree(staging, ignore_errors=True)
    return placed


def _undo_moves(data: Path, staging: Path) -> None:
    """Put the copies already moved back into staging, then remove it (a move that failed midway)."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        for rel, target in json.loads((staging / _PLAN).read_text(encoding="utf-8"))["moves"]:
            if in_folder(data, target).is_file() and not in_folder(staging, rel).exists():
                os.rename(in_folder(data, target), in_folder(staging, rel))
    shutil.rmtree(staging, ignore_errors=True)


def _record(data: Path, batch: str, source: object, placed: list[str]) -> None:
    """Add a batch of copies to the data folder's record of pseudo-labels (once per batch)."""
    path = data / PSEUDO_RECORD
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        record = []
    if not isinstance(record, list):
        record = []
    if not any(isinstance(r, dict) and r.get("batch") == batch for r in record):
        record.append(
            {"batch": batch, "at": time.strftime("%Y-%m-%dT%H:%M:%S"), "from": source, "files": placed}
        )
        atomic.write_json(path, record)
