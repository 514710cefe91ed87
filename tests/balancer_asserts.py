"""Property checks shared by every gradient balancing method, and the
matrices they run on (after torchjd's shared asserts)."""

from __future__ import annotations

import numpy as np

from keras_mtl.balancers import Balancer
from keras_mtl.balancers.base import Inputs, context


def _orthonormal(rng: np.random.Generator, n: int, k: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(n, k)))
    return q[:, :k]


def matrices() -> list[tuple[str, np.ndarray]]:
    """Named Jacobians (tasks x parameters) of every kind the methods meet."""
    rng = np.random.default_rng(0)
    out: list[tuple[str, np.ndarray]] = []
    for k, n in ((2, 5), (3, 7), (5, 11), (10, 40)):
        out.append((f"gaussian {k}x{n}", rng.normal(size=(k, n))))
        base = rng.normal(size=n)
        out.append((f"correlated {k}x{n}", base + 0.3 * rng.normal(size=(k, n))))
    # Strongly conflicting: rows that cancel with positive weights.
    v = rng.normal(size=6)
    out.append(("opposite 2x6", np.stack([v, -2.0 * v])))
    u = _orthonormal(rng, 6, 2)
    out.append(
        (
            "three-way conflict 3x6",
            np.stack(
                [
                    u[:, 0],
                    -0.5 * u[:, 0] + 0.8 * u[:, 1],
                    -0.5 * u[:, 0] - 0.8 * u[:, 1],
                ]
            ),
        )
    )
    # Strongly stationary: v^T J = 0 for a positive v.
    left = np.abs(rng.normal(size=5))
    orthogonal = np.linalg.qr(np.c_[left, rng.normal(size=(5, 4))])[0][:, 1:4]
    out.append(("strongly stationary 5x8", orthogonal @ rng.normal(size=(3, 8))))
    # Rank-deficient: more tasks than dimensions, and duplicate rows.
    out.append(("rank one 4x6", np.outer(rng.normal(size=4), rng.normal(size=6))))
    out.append(("wide 6x3", rng.normal(size=(6, 3))))
    g = rng.normal(size=9)
    out.append(("duplicates 3x9", np.stack([g, g, rng.normal(size=9)])))
    out.append(("zero 3x4", np.zeros((3, 4))))
    out.append(
        ("one zero row 3x5", np.vstack([rng.normal(size=(2, 5)), np.zeros((1, 5))]))
    )
    out.append(("single task 1x4", rng.normal(size=(1, 4))))
    return out


SCALES = (1e-8, 1e-4, 1.0, 1e4, 1e8)


def scaled_matrices() -> list[tuple[str, np.ndarray]]:
    return [
        (f"{name} * {scale:g}", scale * m) for name, m in matrices() for scale in SCALES
    ]


def assert_structure(method: Balancer, jacobian: np.ndarray) -> np.ndarray:
    """The update has one entry per parameter, all finite."""
    update = np.asarray(method.aggregate(jacobian))
    assert update.shape == (jacobian.shape[1],), update.shape
    assert np.all(np.isfinite(update)), update
    return update


def assert_zero_gives_zero(method: Balancer, shape: tuple[int, int]) -> None:
    update = np.asarray(method.aggregate(np.zeros(shape)))
    np.testing.assert_array_equal(update, np.zeros(shape[1]))


def assert_non_conflicting(
    method: Balancer, jacobian: np.ndarray, tol: float = 1e-6
) -> None:
    """Every task's gradient has a non-negative inner product with the update,
    up to `tol` relative to the size of the problem (||g_i|| ||J||): at a
    strongly stationary point the exact answer is the zero update, and a
    solver's residue is judged against the gradients, not against itself."""
    update = np.asarray(method.aggregate(jacobian))
    products = jacobian @ update
    scale = np.linalg.norm(jacobian, axis=1) * np.linalg.norm(jacobian) + 1e-300
    assert np.all(products >= -tol * scale), (products, scale)


def assert_permutation_invariant(
    method: Balancer, jacobian: np.ndarray, runs: int = 3, tol: float = 1e-6
) -> None:
    """Permuting the tasks does not change the update."""
    rng = np.random.default_rng(1)
    update = np.asarray(method.aggregate(jacobian))
    size = np.linalg.norm(jacobian) + 1e-300
    for _ in range(runs):
        order = rng.permutation(len(jacobian))
        again = np.asarray(method.aggregate(jacobian[order]))
        np.testing.assert_allclose(again, update, atol=tol * size, rtol=tol)


def assert_scale_equivariant(
    method: Balancer, jacobian: np.ndarray, tol: float = 1e-6
) -> None:
    """Scaling every gradient by s > 0 scales the update by s."""
    update = np.asarray(method.aggregate(jacobian))
    for s in (1e-3, 7.0, 1e3):
        np.testing.assert_allclose(
            np.asarray(method.aggregate(s * jacobian)),
            s * update,
            atol=tol * s * (np.linalg.norm(jacobian) + 1e-300),
            rtol=tol,
        )


def loss_sequences() -> list[tuple[str, np.ndarray]]:
    """Named runs of task losses (steps x tasks) over three epochs (two
    steps each), at scales from 1e-8 to 1e8: what a loss weighting meets,
    stateful ones through their warm-up epochs."""
    rng = np.random.default_rng(2)
    out = []
    for k in (1, 2, 3, 5, 10):
        base = rng.uniform(0.2, 3.0, size=k)
        decay = rng.uniform(0.5, 1.0, size=k)
        run = np.stack([base * decay ** (step // 2) for step in range(6)])
        for scale in SCALES:
            out.append((f"{k} tasks * {scale:g}", scale * run))
    out.append(("equal losses", np.ones((6, 3))))
    out.append(("one task at zero", np.tile([0.0, 1.0, 2.0], (6, 1))))
    return out


def run_losses(method: Balancer, losses: np.ndarray) -> list[np.ndarray]:
    """Feeds a loss weighting the steps of `losses` (two per epoch) from
    its initial state; returns the weights of each step."""
    state = method.init(losses.shape[1])
    out = []
    for step, row in enumerate(losses):
        ctx = context(method.seed, step, step // 2)
        weights, state = method.update(Inputs(np.asarray(row, float)), state, ctx)
        out.append(np.asarray(weights))
    return out


def assert_loss_weights(method: Balancer, losses: np.ndarray) -> None:
    """Every step gives one finite, non-negative weight per task."""
    for weights in run_losses(method, losses):
        assert weights.shape == (losses.shape[1],), weights.shape
        assert np.all(np.isfinite(weights)), weights
        assert np.all(weights >= 0), weights


def assert_loss_permutation_invariant(
    method: Balancer, losses: np.ndarray, tol: float = 1e-9
) -> None:
    """Permuting the tasks permutes the weights, at every step."""
    order = np.random.default_rng(3).permutation(losses.shape[1])
    for plain, permuted in zip(
        run_losses(method, losses),
        run_losses(method, losses[:, order]),
        strict=True,
    ):
        np.testing.assert_allclose(permuted, plain[order], rtol=tol, atol=0)
