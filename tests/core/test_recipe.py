"""The recipe as data, the linear probe, and the warm-up + cosine schedule."""

from __future__ import annotations

import numpy as np
import pytest

from tlstudio.core.freeze_plan import FreezePlan
from tlstudio.core.settings import HeadSettings, TrainSettings
from tlstudio.core.training.probe import fit_probe, lbfgs
from tlstudio.core.training.recipe import FINE_TUNE_RULES, batchnorm_momentum, fine_tune_budget, plan_recipe


def test_defaults_are_probe_then_a_data_sized_fine_tune_then_interpolation():
    recipe = plan_recipe(TrainSettings(backbone="x"), train_images=110)
    probe, tune = recipe.phases
    assert probe.probe and not probe.augment and probe.plan.preset == "all"
    assert tune.name == "fine-tune" and tune.augment and tune.cosine
    assert tune.plan == FreezePlan("top", 2, lr_decay=0.5)
    assert tune.learning_rate == pytest.approx(1e-4)  # 10x below the head's rate
    steps, warmup = fine_tune_budget(110)
    assert tune.epochs * 4 >= steps and tune.warmup_steps == warmup  # 110 images / 32 = 4 steps
    assert recipe.interpolate and not recipe.from_scratch
    assert "linear probe" in recipe.describe() and "WiSE-FT" in recipe.describe()


def test_the_budget_rule_grows_with_the_data_and_is_ordered():
    limits = [rule[0] for rule in FINE_TUNE_RULES]
    assert limits == sorted(limits)
    steps = [fine_tune_budget(n)[0] for n in (50, 400, 3_000, 40_000, 10**6)]
    assert steps == sorted(steps) and steps[0] < steps[-1]
    assert all(0 <= fine_tune_budget(n)[1] < fine_tune_budget(n)[0] for n in (50, 10**6))


def test_settings_change_the_recipe_as_the_user_asked():
    base = TrainSettings(backbone="x")
    assert len(plan_recipe(base.but(fine_tune_epochs=0), 100).phases) == 1
    assert plan_recipe(base.but(fine_tune_epochs=7), 100).phases[1].epochs == 7
    mlp = plan_recipe(base.but(head=HeadSettings(dense_units=(64,))), 100)
    assert mlp.phases[0].name == "head" and not mlp.phases[0].probe  # a probe is linear
    assert not plan_recipe(base, 100, probe_possible=False).phases[0].probe
    assert not plan_recipe(base.but(interpolate=False), 100).interpolate
    own = plan_recipe(base.but(freeze=FreezePlan("top", 3)), 100)
    assert [p.name for p in own.phases] == ["train"] and own.phases[0].plan.value == 3
    scratch = plan_recipe(base.but(weights="none", epochs=12, fine_tune_epochs=3), 100)
    assert scratch.from_scratch and scratch.phases[0].epochs == 15
    assert scratch.phases[0].plan.preset == "none" and scratch.phases[0].plan.train_batchnorm


def test_batchnorm_momentum_follows_the_run_length():
    assert batchnorm_momentum(50) == pytest.approx(0.9)
    assert 0.9 < batchnorm_momentum(500) < 0.99
    assert batchnorm_momentum(10**6) == pytest.approx(0.99)


def test_bad_numbers_are_refused_before_any_work():
    for bad in (float("nan"), float("inf"), -1.0, 0.0):
        with pytest.raises(ValueError, match="learning_rate"):
            TrainSettings(backbone="x", learning_rate=bad)
    with pytest.raises(ValueError, match="fine_tune_epochs"):
        TrainSettings(backbone="x", fine_tune_epochs=-2)


def test_lbfgs_finds_the_minimum_of_a_quadratic():
    a = np.diag([1.0, 10.0, 100.0])
    b = np.array([1.0, -2.0, 3.0])
    x, iterations, converged = lbfgs(lambda x: (0.5 * x @ a @ x - b @ x, a @ x - b), np.zeros(3))
    np.testing.assert_allclose(x, np.linalg.solve(a, b), atol=1e-5)
    assert converged and iterations < 100


def blobs(n: int, d: int, classes: int, spread: float, seed: int):
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (classes, d))
    y = rng.integers(0, classes, n)
    return centres[y] * 3 + rng.normal(0, spread, (n, d)) + 7.0, y  # offset: not centred


def test_probe_converges_and_generalises_on_separable_features():
    x, y = blobs(120, 32, 5, 2.0, 0)
    probe = fit_probe(x, y, 5)
    assert probe.converged and probe.cv_accuracy is not None and probe.cv_accuracy > 0.9
    xt, yt = blobs(2000, 32, 5, 2.0, 0)
    assert (probe.predict_proba(xt).argmax(1) == yt).mean() > 0.95
    assert probe.kernel.shape == (32, 5) and probe.bias.shape == (5,)


def test_probe_regularises_more_when_features_are_noise():
    rng = np.random.default_rng(1)
    x, y = rng.normal(0, 1, (100, 200)), rng.integers(0, 4, 100)
    noisy = fit_probe(x, y, 4)
    clean = fit_probe(*blobs(100, 200, 4, 0.5, 2), 4)
    assert noisy.l2 > clean.l2
    p = noisy.predict_proba(rng.normal(0, 1, (500, 200)))
    assert p.max(1).mean() < 0.6  # not confident about noise


def test_probe_class_weights_and_missing_classes():
    x, y = blobs(60, 8, 3, 1.0, 3)
    weighted = fit_probe(x, y, 4, sample_weight=np.where(y == 0, 5.0, 1.0))
    assert weighted.kernel.shape == (8, 4)  # class 3 has no image, still an output
    assert weighted.predict_proba(x)[:, 3].max() < 0.05
    tiny = fit_probe(x[:3], np.array([0, 1, 2]), 3)  # one image per class: no cross-validation
    assert tiny.cv_accuracy is None and tiny.train_accuracy == 1.0


def test_warmup_cosine_schedule():
    from tlstudio.core.training.schedules import WarmupCosine

    s = WarmupCosine(1e-3, total_steps=100, warmup_steps=10)
    values = [float(s(i)) for i in range(100)]
    assert values[0] == pytest.approx(1e-4) and values[9] == pytest.approx(1e-3)
    assert max(values) == pytest.approx(1e-3)
    assert values[99] < 1e-5 and values[50] < values[20]
    half = s.scaled(0.5)
    assert float(half(30)) == pytest.approx(0.5 * float(s(30)))
    assert WarmupCosine.from_config(s.get_config()).get_config() == s.get_config()


def test_lr_finder_suggestion_sits_on_the_falling_stretch():
    from tlstudio.core.training.lr_find import suggest

    rates = list(np.logspace(-7, 0, 60))
    x = np.log10(rates)
    loss = list(2.0 - 1.5 / (1 + np.exp(-(x + 4) * 3)) + np.where(x > -2, (x + 2) ** 2 * 3, 0))
    suggestion, valley, minimum = suggest(rates, loss)
    assert 1e-5 < valley < 1e-2 and minimum > valley
    assert suggestion == max(rates[0], min(valley, minimum / 10))
    assert suggest(rates[:3], loss[:3]) == (None, None, None)


def test_wide_features_are_fitted_in_their_row_space_with_the_same_result(monkeypatch):
    from tlstudio.core.training import probe as module

    x, y = blobs(60, 300, 3, 30.0, 4)  # more features than images (a wide backbone on few), L2 inside
    calls: list[tuple[int, int]] = []
    reduced = fit_probe(x, y, 3, progress=lambda done, total: calls.append((done, total)))
    assert calls[-1][0] == calls[-1][1] == 1 + len(module.L2_GRID) * 5  # every fit reported
    assert [done for done, _ in calls] == list(range(1, calls[-1][1] + 1))
    monkeypatch.setattr(module, "_row_space", lambda z: (z, np.eye(z.shape[1])))  # the full problem
    full = fit_probe(x, y, 3)
    assert reduced.l2 == full.l2 and module.L2_GRID[0] < reduced.l2 < module.L2_GRID[-1]
    xt, _ = blobs(200, 300, 3, 30.0, 4)
    np.testing.assert_allclose(reduced.predict_proba(xt), full.predict_proba(xt), atol=2e-3)


def test_early_stopping_needs_a_real_improvement_in_validation_loss():
    """A loss that falls by 1e-6 an epoch is not progress: the phase stops after its patience
    (it ran 167 of 200 epochs on a 16-image folder with min_delta 0)."""
    import keras
    import numpy as np

    from tlstudio.core.settings import EARLY_STOPPING_MIN_DELTA

    assert EARLY_STOPPING_MIN_DELTA >= 1e-5
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile("sgd", "mse")
    stopper = keras.callbacks.EarlyStopping(
        monitor="loss", patience=3, min_delta=EARLY_STOPPING_MIN_DELTA, restore_best_weights=True
    )

    class Creeping(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs["loss"] = 0.5 - 1e-6 * epoch  # a plateau that creeps down

    history = model.fit(
        np.zeros((4, 1)), np.zeros((4, 1)), epochs=50, verbose=0, callbacks=[Creeping(), stopper]
    )
    assert len(history.history["loss"]) <= 5


def test_probe_runs_blas_on_the_capped_thread_count():
    from threadpoolctl import threadpool_info, threadpool_limits

    from tlstudio.core.settings import BLAS_THREADS

    seen: list[set[int]] = []
    x, y = blobs(60, 16, 3, 1.0, 4)
    with threadpool_limits(limits=BLAS_THREADS + 1):  # the caller's pools are wider than the cap
        fit_probe(
            x, y, 3, progress=lambda done, total: seen.append({p["num_threads"] for p in threadpool_info()})
        )
    assert seen and all(threads == {BLAS_THREADS} for threads in seen if threads)


def test_warm_started_path_chooses_as_cold_fits_do():
    """The CV warm-starts each fold along the L2 path; each fit is convex, so cold fits at the chosen
    L2 reach the same optimum and the choice is the one cold fits make."""
    from tlstudio.core.training import probe as probe_module

    x, y = blobs(150, 24, 4, 3.0, 5)
    warm = fit_probe(x, y, 4)
    folds = probe_module.stratified_folds(y, probe_module.CV_FOLDS, 0)
    z = (x - x.mean(0)) / x.std(0)
    losses = {}
    for l2 in probe_module.L2_GRID:
        total = 0.0
        for k in range(int(folds.max()) + 1):
            held = folds == k
            weights, _, _ = probe_module._fit(z[~held], y[~held], np.ones((~held).sum()), 4, l2)
            p = probe_module._softmax(probe_module._logits(z[held], weights))
            total += -np.log(p[np.arange(held.sum()), y[held]]).sum()
        losses[l2] = total / len(y)
    best = min(losses.values())
    assert warm.l2 == max(k for k, v in losses.items() if v <= best * 1.01)
    assert warm.cv_log_loss == pytest.approx(losses[warm.l2], abs=2e-3)


def test_peft_changes_only_the_fine_tune_phase_which_trains_at_the_heads_rate():
    full = plan_recipe(TrainSettings(backbone="x"), 100)
    for mode, words in (("lora", "LoRA adapters only"), ("bitfit", "biases and norms only")):
        recipe = plan_recipe(TrainSettings(backbone="x", peft=mode), 100)
        probe, tune = recipe.phases
        assert probe == full.phases[0] and probe.peft == "none"
        assert tune.peft == mode and tune.plan == full.phases[1].plan and tune.epochs == full.phases[1].epochs
        assert tune.learning_rate == 1e-3 == 10 * full.phases[1].learning_rate  # adapters start at zero
        assert words in recipe.describe()
    assert full.phases[1].peft == "none"
