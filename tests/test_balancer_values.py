"""Golden values: each method on small matrices, from its paper's definition.

J_BASE = [[-4, 1, 1], [6, 1, 1]] (Gramian [[18, -22], [-22, 38]]) is the
matrix of torchjd's value table; the values there match the definitions
below to 4 decimals.
"""

from __future__ import annotations

import numpy as np
import pytest

from keras_mtl import balancers
from keras_mtl.balancers.base import Inputs, context

J_BASE = np.array([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0]])
G_BASE = J_BASE @ J_BASE.T
J3 = np.array([[-4.0, 1.0, 1.0], [6.0, 1.0, 1.0], [1.0, -2.0, 3.0]])

GOLDEN = [
    ("mean", {}, J_BASE, [1.0, 1.0, 1.0]),
    ("upgrad", {}, J_BASE, [0.2929, 1.9004, 1.9004]),
    ("upgrad", {}, J3, [0.306550, 0.655730, 2.322397]),
    ("dualproj", {}, J_BASE, [0.5563, 1.1109, 1.1109]),
    ("dualproj", {}, J3, [0.482201, 0.129450, 1.796116]),
    ("mgda", {}, J_BASE, [0.0, 1.0, 1.0]),
    # Unit gradients: the min-norm weights are (1/2, 1/2) on g_i / ||g_i||.
    ("mgda", {"normalization": "l2"}, J_BASE, [0.015262, 0.198962, 0.198962]),
    ("pcgrad", {}, J_BASE, [0.5848, 3.8012, 3.8012]),  # (20/9) g1 + (30/19) g2
    ("gradvac", {}, J_BASE, [0.5848, 3.8012, 3.8012]),  # first step = PCGrad
    ("imtl_g", {}, J_BASE, [0.0767, 1.0, 1.0]),
    ("imtl_g", {}, J3, [0.075440, 0.901660, 1.065560]),
    ("aligned_mtl", {}, J_BASE, [0.2133, 0.9673, 0.9673]),
    ("aligned_mtl", {"scale": "rmse"}, J_BASE, [0.576376, 2.614172, 2.614172]),
    ("config", {}, J_BASE, [0.1588, 2.0706, 2.0706]),
    ("config", {}, J3, [0.214422, 2.562780, 3.028629]),
    ("cagrad", {"c": 0.5, "rescale": 0}, J_BASE, [0.1835, 1.2041, 1.2041]),
    ("cagrad", {"c": 1.0, "rescale": 0}, J_BASE, [0.0, 2.0, 2.0]),
    # The official code's default rescaling divides by 1 + c^2.
    ("cagrad", {"c": 0.5}, J_BASE, [0.1835 / 1.25, 1.2041 / 1.25, 1.2041 / 1.25]),
    ("nash_mtl", {}, J_BASE, [0.0542, 0.7061, 0.7061]),  # clipped to norm 1
    ("graddrop", {}, [[1.0, -2.0], [3.0, -1.0]], [4.0, -3.0]),  # purity 1 and 0
    ("graddrop", {"leak": 1.0}, J_BASE, [2.0, 2.0, 2.0]),
    # MoCo, first step with losses 1: Y = (1/2) g_i / ||g_i||, lambda stays
    # uniform, update = (g1/sqrt(18) + g2/sqrt(38)) / 4.
    ("moco", {}, J_BASE, [0.0076302, 0.0994811, 0.0994811]),
    # DB-MTL, first step with losses 1: m_i = 0.1 g_i, rescaled to the
    # largest norm: 0.1 (sqrt(38/18) g1 + g2).
    ("db_mtl", {}, J_BASE, [0.0188117, 0.2452966, 0.2452966]),
    ("gradnorm", {}, J_BASE, [2.0, 2.0, 2.0]),  # first epoch: equal weights
]


@pytest.mark.parametrize(
    ("name", "params", "jacobian", "expected"),
    GOLDEN,
    ids=[f"{g[0]}{g[1] or ''}-{len(g[2])}" for g in GOLDEN],
)
def test_golden(name, params, jacobian, expected):
    update = balancers.get(name, **params).aggregate(jacobian)
    np.testing.assert_allclose(update, expected, atol=1e-4)


def test_every_method_has_a_golden_value_or_a_hand_check():
    covered = {g[0] for g in GOLDEN} | {
        "ew",
        "fixed",
        "uw",
        "dwa",
        "rlw",
        "gls",
        "imtl_l",
        "famo",
        "stch",
        "fairgrad",
    }
    assert covered == set(balancers.BALANCERS)


def test_weights_of_gramian_methods():
    np.testing.assert_allclose(
        balancers.get("upgrad").weights(J_BASE), [1.1109, 0.7894], atol=1e-4
    )
    np.testing.assert_allclose(
        balancers.get("mgda").weights(J_BASE), [0.6, 0.4], atol=1e-12
    )
    np.testing.assert_allclose(
        balancers.get("pcgrad").weights(J_BASE), [20 / 9, 30 / 19]
    )


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_fairgrad_solves_its_defining_equation(alpha):
    w = balancers.get("fairgrad", alpha=alpha).weights(J3)
    np.testing.assert_allclose(w ** (1 / alpha) * (J3 @ J3.T @ w), 1.0, rtol=1e-6)


def test_nash_mtl_without_clipping_is_the_bargaining_solution():
    w = balancers.get("nash_mtl", max_norm=0.0).weights(J3)
    g = J3 @ J3.T
    g = g / np.linalg.norm(g)
    np.testing.assert_allclose(w * (g @ w), 1.0, rtol=1e-6)


# ------------------------------------------------------------ loss weightings


def test_simple_loss_weightings():
    losses = [0.5, 2.0]
    assert balancers.get("ew").weights(losses).tolist() == [1.0, 1.0]
    assert balancers.get("fixed", weights=[2.0, 0.5]).weights(losses).tolist() == [
        2.0,
        0.5,
    ]
    np.testing.assert_allclose(balancers.get("uw").weights(losses), 0.5 * np.exp(0.5))
    np.testing.assert_allclose(balancers.get("gls").weights([1.0, 4.0]), [1.0, 0.25])
    assert balancers.get("imtl_l").weights(losses).tolist() == [1.0, 1.0]


def test_rlw_draws_positive_weights_summing_to_one_per_step():
    method = balancers.get("rlw", seed=5)
    state = method.init(3)
    first = method.update(Inputs(np.ones(3)), state, context(5, step=0))[0]
    again = method.update(Inputs(np.ones(3)), state, context(5, step=0))[0]
    later = method.update(Inputs(np.ones(3)), state, context(5, step=1))[0]
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, later)
    assert np.all(first > 0) and first.sum() == pytest.approx(1.0)


def _run(method, batches):
    """Feeds (epoch, losses) batches; returns the weights of each."""
    state = method.init(len(batches[0][1]))
    out = []
    for step, (epoch, losses) in enumerate(batches):
        w, state = method.update(
            Inputs(np.asarray(losses, float)), state, context(0, step, epoch)
        )
        out.append(w)
    return out, state


def test_dwa_by_hand():
    batches = [
        (0, [2.0, 4.0]),
        (0, [2.0, 4.0]),
        (1, [1.0, 3.0]),
        (1, [1.0, 4.2]),
        (2, [0.9, 3.0]),
    ]
    weights, _ = _run(balancers.get("dwa"), batches)
    for w in weights[:4]:
        assert w.tolist() == [1.0, 1.0]
    # Epoch averages [2, 4] then [1, 3.6]: r = [0.5, 0.9], w = 2 softmax(r / 2).
    e = np.exp(np.array([0.5, 0.9]) / 2)
    np.testing.assert_allclose(weights[4], 2 * e / e.sum())


def test_famo_by_hand():
    weights, state = _run(balancers.get("famo"), [(0, [0.5, 2.0]), (0, [0.25, 2.0])])
    np.testing.assert_allclose(weights[0], [0.8, 0.2])  # z / L, normalised
    # delta = [log 2, 0]; gradient z (delta - z.delta) = [+, -]; Adam's first
    # step moves each logit by lr against the sign of its gradient.
    z = np.exp([-0.025, 0.025])
    z /= z.sum()
    expected = (z / [0.25, 2.0]) / (z / [0.25, 2.0]).sum()
    np.testing.assert_allclose(weights[1], expected, rtol=1e-6)
    np.testing.assert_allclose(state.logits, [-0.025, 0.025], rtol=1e-6)


def test_stch_by_hand():
    method = balancers.get("stch", warmup_epochs=0)
    weights, state = _run(method, [(0, [1.0, 4.0]), (1, [0.5, 4.0])])
    np.testing.assert_allclose(weights[0], [1.0, 0.25])  # warm-up: d/dL sum log L
    np.testing.assert_allclose(state.nadir, [1.0, 4.0])
    # l = log(L / nadir) = [log 0.5, 0]: w = 2 softmax(l) / L.
    np.testing.assert_allclose(weights[1], [2 * (1 / 3) / 0.5, 2 * (2 / 3) / 4.0])


def test_gradnorm_moves_weight_to_the_slower_task():
    method = balancers.get("gradnorm", alpha=1.5, lr=0.5)
    state = method.init(2)
    g = np.eye(2)  # equal gradient norms
    for step, (epoch, losses) in enumerate(
        [(0, [1.0, 1.0]), (1, [0.2, 0.9]), (1, [0.2, 0.9])]
    ):
        inputs = Inputs(np.asarray(losses), gramian=g)
        w, state = method.update(inputs, state, context(0, step, epoch))
    assert w[1] > w[0] and w.sum() == pytest.approx(2.0)


@pytest.mark.parametrize(
    ("name", "params", "message"),
    [
        ("dwa", {"temperature": 0}, "DWA: temperature must be > 0, got 0."),
        ("cagrad", {"c": -1}, "CAGrad: c must be >= 0, got -1."),
        (
            "mgda",
            {"normalization": "l1"},
            "MGDA: normalization must be one of none, l2, loss, loss+, got 'l1'.",
        ),
        ("gradvac", {"beta": 2}, "GradVac: beta must be in [0, 1], got 2."),
        ("famo", {"lr": "fast"}, "FAMO: lr must be a number, got 'fast'."),
        ("pcgrad", {"seed": None}, "PCGrad: seed must be a number, got None."),
        ("fixed", {"weights": [1, -1]}, "Fixed: weights must be finite numbers >= 0"),
        ("upgrad", {"tol": 1}, "Balancer 'upgrad': "),
        ("pcgrd", {}, "Unknown balancer 'pcgrd'; expected one of"),
    ],
)
def test_errors(name, params, message):
    with pytest.raises(ValueError) as error:
        balancers.get(name, **params)
    assert message in str(error.value)
    assert "\n" not in str(error.value)


def test_repr_shows_hyperparameters_and_config_round_trips():
    method = balancers.get("cagrad", c=0.4, rescale=2)
    assert repr(method) == "CAGrad(c=0.4, rescale=2, norm_eps=0.0001)"
    assert balancers.get(balancers.serialize(method)) == method


DEVICE = [k for k, cls in balancers.BALANCERS.items() if getattr(cls, "device", False)]


def _device_cases(rng: np.random.Generator) -> list[tuple[np.ndarray, np.ndarray]]:
    """(Jacobian, present) pairs: generic, dependent rows, a duplicated
    task, tasks without labels in the batch, and 10 and 12 tasks whose
    gradients conflict (rows with a large shared part of either sign)."""
    generic = rng.normal(size=(4, 9))
    dependent = generic.copy()
    dependent[3] = dependent[0] + 2 * dependent[1]
    duplicated = generic.copy()
    duplicated[2] = duplicated[1]
    everyone = np.ones(4, bool)
    return [
        (J_BASE, np.ones(2, bool)),
        (J3, np.ones(3, bool)),
        (generic, everyone),
        (dependent, everyone),
        (duplicated, everyone),
        (generic, np.array([True, False, True, True])),
        (generic, np.array([False, False, True, False])),
        (generic, np.zeros(4, bool)),
        (conflicting(rng, 10), np.ones(10, bool)),
        (conflicting(rng, 12), rng.random(12) < 0.8),
    ]


def test_projections_run_on_the_device_up_to_a_number_of_tasks():
    """UPGrad's and DualProj's pivoting replaces the host call up to 32
    tasks, on the CPU as on an accelerator; closed forms at any count."""
    for key in ("upgrad", "dualproj"):
        method = balancers.get(key)
        for accelerator in (False, True):
            assert method.runs_on_device(32, accelerator)
            assert not method.runs_on_device(33, accelerator)
    assert balancers.get("mean").runs_on_device(40, False)
    assert not balancers.get("mgda").runs_on_device(2, True)


def _hard_projections(rng, tasks):
    """A random problem of a family where signs are hard to judge: gradients
    that conflict around one direction, Gramians of rank 1 to tasks - 1
    (more tasks than directions), and a task duplicated beside one
    reversed; about one task in seven without labels in the batch."""
    family = rng.integers(4)
    if family == 0:
        jacobian = conflicting(rng, tasks)
    elif family == 1:
        jacobian = rng.normal(size=(tasks, int(rng.integers(1, tasks))))
    elif family == 2:
        jacobian = conflicting(rng, tasks)[:, : int(rng.integers(1, 6))]
    else:
        jacobian = rng.normal(size=(tasks, 20))
        jacobian[1] = jacobian[0]
        jacobian[-1] = -0.5 * jacobian[-2]
    present = rng.random(tasks) < 0.85
    return jacobian @ jacobian.T, present


@pytest.mark.parametrize("tasks", [7, 10, 16, 32])
def test_pivoting_on_the_device_equals_the_hosts_solver(tasks, rng):
    """The device's projections (block principal pivoting in float32) give
    UPGrad the weights of the host's float64 `nnls`, on 60 hard problems
    of each size (the tolerance of the closed forms' test)."""
    import keras
    from keras import ops

    from keras_mtl.balancers.dual_cone import device_project

    method = balancers.get("upgrad")

    def solve(g, p, t):
        args = [ops.convert_to_tensor(a) for a in (g, p, t)]
        return device_project(*args, 0.0, 1e-4)

    if keras.backend.backend() == "jax":
        import jax

        solve = jax.jit(solve)
    for _ in range(60):
        gramian, present = _hard_projections(rng, tasks)
        gramian = gramian * np.outer(present, present)
        expected = np.zeros(tasks)
        idx = np.flatnonzero(present)
        if len(idx):
            expected[idx] = method.update(
                Inputs(np.ones(len(idx)), gramian[np.ix_(idx, idx)], None),
                (),
                context(0, 0, 0, np.ones(len(idx), bool)),
            )[0]
        targets = np.diag(present / max(present.sum(), 1))
        got = ops.convert_to_numpy(
            solve(
                gramian.astype("float32"),
                present.astype("float32"),
                targets.astype("float32"),
            )
        ).sum(axis=1)
        np.testing.assert_allclose(
            got, expected, rtol=2e-3, atol=2e-4 * max(1, np.abs(expected).max())
        )


def test_pivoting_that_does_not_settle_gives_nan(rng, monkeypatch):
    """Out of exchanges, a projection is NaN (the step is skipped), never
    the last guess: with no exchange allowed, a problem whose answer needs
    one is NaN, and one whose answer is the start (no conflict) is not."""
    from keras import ops

    from keras_mtl.balancers import dual_cone

    monkeypatch.setattr(dual_cone, "EXCHANGES", 0)
    jacobian = conflicting(rng, 8)
    for gramian, settled in ((jacobian @ jacobian.T, False), (np.eye(8), True)):
        got = ops.convert_to_numpy(
            dual_cone.device_project(
                ops.convert_to_tensor(gramian.astype("float32")),
                ops.ones((8,)),
                ops.eye(8) / 8,
                0.0,
                1e-4,
            )
        )
        assert bool(np.isfinite(got).all()) is settled


def conflicting(rng: np.random.Generator, tasks: int) -> np.ndarray:
    """Task gradients around one direction, of either sign, plus noise."""
    common = rng.normal(size=30)
    signs = rng.choice([-1.0, 1.0], size=(tasks, 1)) * rng.uniform(0.2, 2, (tasks, 1))
    return signs * common + rng.normal(size=(tasks, 30))


@pytest.mark.model
@pytest.mark.parametrize(
    ("key", "config"),
    [(k, {}) for k in DEVICE]
    + [
        ("aligned_mtl", {"scale": "median"}),
        ("aligned_mtl", {"scale": "rmse"}),
    ],
)
def test_closed_forms_on_device_equal_the_host(key, config, rng):
    """A method with a closed form gives on the device (keras.ops, float32)
    the weights its NumPy `update` gives on the present tasks alone."""
    from keras import ops

    from keras_mtl.training.balancing import _on_present

    method = balancers.get(key, **config)
    assert {
        "mean",
        "imtl_g",
        "aligned_mtl",
        "config",
        "upgrad",
        "dualproj",
        "pcgrad",
    } <= set(DEVICE)
    for jacobian, present in _device_cases(rng):
        gramian = jacobian @ jacobian.T
        inputs = Inputs(np.ones(len(gramian)), gramian, None)
        state = method.init(len(gramian))
        expected = _on_present(
            method, inputs, state, context(0, 0, 0, present), present
        )
        mask = np.outer(present, present)
        got = ops.convert_to_numpy(
            method.on_device(
                ops.convert_to_tensor((gramian * mask).astype("float32")),
                ops.convert_to_tensor(present.astype("float32")),
            )
        )
        np.testing.assert_allclose(
            got, expected, rtol=2e-3, atol=2e-4 * max(1, np.abs(expected).max())
        )


@pytest.mark.model
def test_pcgrad_on_the_device_follows_the_hosts_orders_at_every_step(rng):
    """PCGrad's orders depend on the step (a table of 128 steps): on the
    device, at steps 0, 5 and 133 (= 5 again), it gives the host's weights
    (tasks missing from the batch included), and the orders do change
    between steps."""
    from keras import ops

    from keras_mtl.training.balancing import _on_present

    method = balancers.get("pcgrad", seed=4)
    jacobian = conflicting(rng, 6)
    gramian = jacobian @ jacobian.T
    seen = []
    for present in (np.ones(6, bool), np.array([1, 1, 0, 1, 0, 1], bool)):
        for step in (0, 1, 5, 133):
            expected = _on_present(
                method,
                Inputs(np.ones(6), gramian, None),
                method.init(6),
                context(4, step, 0, present),
                present,
            )
            mask = np.outer(present, present)
            got = ops.convert_to_numpy(
                method.on_device_at(
                    ops.convert_to_tensor((gramian * mask).astype("float32")),
                    ops.convert_to_tensor(present.astype("float32")),
                    ops.convert_to_tensor(step, "int32"),
                )
            )
            np.testing.assert_allclose(got, expected, rtol=2e-3, atol=1e-4)
            seen.append(expected)
    np.testing.assert_allclose(seen[2], seen[3])  # step 133 is step 5's entry
    assert not np.allclose(seen[0], seen[1]) or not np.allclose(seen[1], seen[2])
