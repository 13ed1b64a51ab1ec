"""The linear probe: a softmax classifier fitted to convergence on frozen backbone features.

Phase 1 of the recipe (LP-FT, Kumar et al., ICLR 2022): before any backbone weight moves, the new
head is the best linear classifier of the cached features — a convex problem, solved here in full
batch with L-BFGS to a small gradient, its L2 strength chosen by stratified cross-validation on the
training split (log loss). NumPy only; seconds on thousands of images.

Written by hand rather than scikit-learn's ``LogisticRegressionCV``: when features outnumber images
(wide backbones on small folders, the common case) it fits in the images' row space, n × n per step;
where images outnumber features both warm-start along the L2 path and take about as long
(docs/benchmarks.md, ``benchmarks/bench_probe.py``). BLAS runs on ``BLAS_THREADS`` threads
(threadpoolctl): uncapped, on a loaded 2-core machine the same fit ran 6× slower.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from tlstudio.core.settings import BLAS_THREADS

L2_GRID = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1.0)
CV_FOLDS = 5


@dataclass(frozen=True)
class Probe:
    """A fitted probe, ready to be written into a Dense layer (kernel, bias on raw features)."""

    kernel: np.ndarray  # (features, classes)
    bias: np.ndarray  # (classes,)
    l2: float
    cv_log_loss: float | None  # the chosen L2's cross-validated log loss (None: no CV was possible)
    cv_accuracy: float | None
    iterations: int
    converged: bool
    train_accuracy: float

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Softmax probabilities for raw features."""
        return _softmax(features @ self.kernel + self.bias)


def fit_probe(
    features: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    *,
    sample_weight: np.ndarray | None = None,
    l2_grid: tuple[float, ...] = L2_GRID,
    folds: int = CV_FOLDS,
    seed: int = 0,
    progress: Callable[[int, int], None] | None = None,
) -> Probe:
    """Fit the probe, choosing the L2 strength by cross-validation.

    Args:
        features: (n, d) backbone features.
        labels: (n,) class indices.
        num_classes: number of outputs (a class may have no training image).
        sample_weight: per-image weights (class weights), mean 1 preferred.
        l2_grid: candidate L2 strengths on standardised features.
        folds: stratified folds for the choice (fewer when a class has fewer images).
        seed: fold assignment seed.
        progress: called with (fits done, fits in all) after each fit.

    Returns:
        The probe fitted on all the given images with the chosen L2.
    """
    with threadpool_limits(limits=BLAS_THREADS):
        return _fit_probe(features, labels, num_classes, sample_weight, l2_grid, folds, seed, progress)


def _fit_probe(features, labels, num_classes, sample_weight, l2_grid, folds, seed, progress) -> Probe:
    x = np.asarray(features, np.float64)
    y = np.asarray(labels, np.int64)
    w = np.ones(len(y)) if sample_weight is None else np.asarray(sample_weight, np.float64)
    mean, std = x.mean(0), x.std(0)
    std = np.where(std > 1e-8, std, 1.0)
    z, basis = _row_space((x - mean) / std)
    fold_of = stratified_folds(y, folds, seed)
    scores: dict[float, tuple[float, float]] = {}
    fits = 1 + (0 if fold_of is None else len(l2_grid) * (int(fold_of.max()) + 1))
    done = 0
    if fold_of is not None:
        totals = {l2: [0.0, 0, 0] for l2 in l2_grid}  # log loss, hits, count
        for k in range(int(fold_of.max()) + 1):
            held = fold_of == k
            start = None  # warm start along the path, strongest L2 first (as scikit-learn's CV does)
            for l2 in sorted(l2_grid, reverse=True):
                start, _, _ = _fit(z[~held], y[~held], w[~held], num_classes, l2, start=start)
                done += 1
                if progress is not None:
                    progress(done, fits)
                p = _softmax(_logits(z[held], start))
                totals[l2][0] += -np.log(np.clip(p[np.arange(held.sum()), y[held]], 1e-12, None)).sum()
                totals[l2][1] += int((p.argmax(1) == y[held]).sum())
                totals[l2][2] += int(held.sum())
        scores = {l2: (t[0] / t[2], t[1] / t[2]) for l2, t in totals.items()}
        # the lowest CV log loss; among those within 1% of it, the strongest regularisation
        best = min(v[0] for v in scores.values())
        l2 = max(k for k, v in scores.items() if v[0] <= best * 1.01)
    else:  # no cross-validation: a single candidate is taken as given (else a mild default)
        l2 = l2_grid[0] if len(l2_grid) == 1 else 1e-2
    weights, iterations, converged = _fit(z, y, w, num_classes, l2)
    if progress is not None:
        progress(fits, fits)
    kernel_z, bias_z = basis @ weights[:-1], weights[-1]
    kernel = kernel_z / std[:, None]
    bias = bias_z - (mean / std) @ kernel_z
    train_accuracy = float((_logits(z, weights).argmax(1) == y).mean())
    cv = scores.get(l2)
    return Probe(
        kernel.astype(np.float32),
        bias.astype(np.float32),
        l2,
        cv[0] if cv else None,
        cv[1] if cv else None,
        iterations,
        converged,
        train_accuracy,
    )


def _row_space(z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Features in their row space's coordinates, and the basis back, when there are more features
    than images (a 4,096-wide backbone on a few hundred images); else as they are.

    Exact, not an approximation: the L2-regularised optimum's kernel is a combination of the images'
    feature rows (its gradient ``zᵀδ + λW`` vanishes), so with ``z = U S Vᵀ`` it is ``V B`` where ``B``
    solves the same problem on ``U S`` — whose penalty ``‖V B‖² = ‖B‖²`` is the same — and every fold
    (a subset of the rows) lies in the same space. Each step then costs n×n, not n×d.
    """
    n, d = z.shape
    if d <= n:
        return z, np.eye(d)
    u, s, vt = np.linalg.svd(z, full_matrices=False)
    keep = s > s[0] * 1e-10 if len(s) else s > 0
    return u[:, keep] * s[keep], vt[keep].T


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray | None:
    """A fold index per image, classes spread evenly; None when a class has fewer than 2 images."""
    counts = np.bincount(y)
    present = counts[counts > 0]
    k = int(min(folds, present.min())) if len(present) else 0
    if k < 2:
        return None
    rng = np.random.default_rng(seed)
    fold_of = np.empty(len(y), np.int64)
    for c in np.flatnonzero(counts):
        members = rng.permutation(np.flatnonzero(y == c))
        fold_of[members] = (np.arange(len(members)) + rng.integers(k)) % k
    return fold_of


def _logits(z: np.ndarray, weights: np.ndarray) -> np.ndarray:
    return z @ weights[:-1] + weights[-1]


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _fit(
    z, y, w, num_classes: int, l2: float, max_iter: int = 500, start: np.ndarray | None = None
) -> tuple[np.ndarray, int, bool]:
    """Weighted multinomial logistic regression with L2 on the kernel, from ``start`` (else zeros);
    (weights, iterations, converged)."""
    n, d = z.shape
    onehot = np.zeros((n, num_classes))
    onehot[np.arange(n), y] = 1.0
    total = w.sum()

    def loss_and_grad(flat: np.ndarray) -> tuple[float, np.ndarray]:
        weights = flat.reshape(d + 1, num_classes)
        logits = _logits(z, weights)
        logits -= logits.max(1, keepdims=True)
        log_p = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        loss = -(w * (onehot * log_p).sum(1)).sum() / total + 0.5 * l2 * (weights[:-1] ** 2).sum()
        delta = (np.exp(log_p) - onehot) * (w / total)[:, None]
        grad = np.vstack([z.T @ delta + l2 * weights[:-1], delta.sum(0, keepdims=True)])
        return float(loss), grad.ravel()

    x0 = np.zeros((d + 1) * num_classes) if start is None else start.ravel()
    flat, iterations, converged = lbfgs(loss_and_grad, x0, max_iter=max_iter)
    return flat.reshape(d + 1, num_classes), iterations, converged


def lbfgs(loss_and_grad, x0: np.ndarray, *, max_iter: int = 500, memory: int = 10, tol: float = 1e-6):
    """Minimise a smooth function with L-BFGS and a backtracking (Armijo) line search.

    Returns:
        (x, iterations, converged): converged when the gradient's largest entry fell below ``tol``
        or the loss stopped changing.
    """
    x = x0.copy()
    f, g = loss_and_grad(x)
    history: list[tuple[np.ndarray, np.ndarray, float]] = []
    for it in range(1, max_iter + 1):
        if np.abs(g).max() < tol:
            return x, it - 1, True
        q = g.copy()
        alphas = []
        for s, y, rho in reversed(history):
            a = rho * (s @ q)
            q -= a * y
            alphas.append(a)
        if history:
            s, y, _ = history[-1]
            q *= (s @ y) / (y @ y)
        else:
            q /= max(1.0, np.linalg.norm(g))
        for (s, y, rho), a in zip(history, reversed(alphas), strict=True):
            q += s * (a - rho * (y @ q))
        direction = -q
        slope = g @ direction
        if slope >= 0:  # not a descent direction: start afresh from the gradient
            history.clear()
            direction, slope = -g, -(g @ g)
        step = 1.0
        while True:
            x_new = x + step * direction
            f_new, g_new = loss_and_grad(x_new)
            if f_new <= f + 1e-4 * step * slope:
                break
            step *= 0.5
            if step < 1e-12:
                return x, it, True  # no further decrease is possible at this precision
        s, y = x_new - x, g_new - g
        if s @ y > 1e-12:
            history.append((s, y, 1.0 / (s @ y)))
            if len(history) > memory:
                history.pop(0)
        done = abs(f - f_new) <= 1e-12 * max(1.0, abs(f))
        x, f, g = x_new, f_new, g_new
        if done:
            return x, it, True
    return x, max_iter, bool(np.abs(g).max() < tol)
