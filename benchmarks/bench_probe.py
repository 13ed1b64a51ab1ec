"""The linear probe's fit: the current code against the version in a git revision, side by side.

Run:  python benchmarks/bench_probe.py [--before REV] [--repeats 1]

Synthetic backbone features (non-negative, as pooled activations are; classes differ by a random
direction plus noise) in the shapes the recipe meets: few images and wide features (the sample's
CNN: 280 × 4,096), a ResNet50 on a small set (500 × 2,048), an EfficientNetB0 on a larger one
(2,000 × 1,280). For each: seconds to fit (5-fold choice of the L2 strength over 9 values, then
the fit on all images), the chosen L2, accuracy on held-out features, and the largest difference
between the two versions' probabilities on them; and scikit-learn's ``LogisticRegressionCV`` on the
same standardised features, the same L2 grid (``C = 1 / (l2 · n)``) and 5 folds, on the same capped
BLAS threads (the library the issue asked to measure the hand-written probe against).
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
SHAPES = ((280, 4096, 10), (500, 2048, 5), (2000, 1280, 8))


def module_at(revision: str):
    """``tlstudio/core/training/probe.py`` as it was at ``revision``, imported on its own."""
    source = subprocess.run(
        ["git", "show", f"{revision}:tlstudio/core/training/probe.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "probe_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("probe_before", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["probe_before"] = module  # (its dataclass looks itself up there)
    spec.loader.exec_module(module)
    return module


def features(n: int, d: int, classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(classes, d)) * 0.06
    y = np.arange(n) % classes
    x = np.maximum(0.0, rng.normal(size=(n, d)) + directions[y] + rng.gamma(2.0, 0.5, size=(1, d)))
    return x.astype(np.float32), y


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="07db316", help="the git revision to compare with")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    from tlstudio.core.training import probe as now

    before = module_at(args.before)
    print(
        f"{'images × features, classes':<28} {'before':>9} {'now':>9} {'ratio':>6}  L2 before/now  "
        "held-out acc before/now  max |Δp|"
    )
    for n, d, k in SHAPES:
        x, y = features(n, d, k, seed=n)
        xt, yt = features(600, d, k, seed=n)  # the same class directions: seed n
        xt, yt = xt[n % 7 :], yt[n % 7 :]
        rows = {}
        for name, module in (("before", before), ("now", now)):
            times = []
            for _ in range(args.repeats):
                started = time.perf_counter()
                fitted = module.fit_probe(x, y, k, seed=0)
                times.append(time.perf_counter() - started)
            p = fitted.predict_proba(xt)
            rows[name] = (min(times), fitted.l2, float((p.argmax(1) == yt).mean()), p)
        b, c = rows["before"], rows["now"]
        sk_seconds, sk_l2, sk_accuracy = sklearn_probe(x, y, xt, yt, now.L2_GRID, args.repeats)
        print(
            f"{f'{n:,} × {d:,}, {k}':<28} {b[0]:>8.1f}s {c[0]:>8.1f}s {b[0] / c[0]:>5.1f}×  "
            f"{b[1]:g} / {c[1]:g}{'':<6} {b[2]:.3f} / {c[2]:.3f}{'':<12} {np.abs(b[3] - c[3]).max():.4f}"
            f"   scikit-learn {sk_seconds:.1f}s ({c[0] / sk_seconds:.2f}× now's time), L2 {sk_l2:g}, "
            f"acc {sk_accuracy:.3f}"
        )


def sklearn_probe(x, y, xt, yt, grid, repeats: int) -> tuple[float, float, float]:
    """scikit-learn's cross-validated logistic regression on the same problem: (seconds, L2, accuracy)."""
    import warnings

    from sklearn.linear_model import LogisticRegressionCV
    from sklearn.preprocessing import StandardScaler
    from threadpoolctl import threadpool_limits

    from tlstudio.core.settings import BLAS_THREADS

    times = []
    with threadpool_limits(limits=BLAS_THREADS), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        for _ in range(repeats):
            started = time.perf_counter()
            scaler = StandardScaler().fit(x)
            model = LogisticRegressionCV(
                Cs=[1 / (l2 * len(y)) for l2 in grid], cv=5, scoring="neg_log_loss", max_iter=500, n_jobs=1
            ).fit(scaler.transform(x), y)
            times.append(time.perf_counter() - started)
    accuracy = float((model.predict(scaler.transform(xt)) == yt).mean())
    return min(times), 1 / (float(model.C_[0]) * len(y)), accuracy


if __name__ == "__main__":
    main()
