"""The models of `benchmarks/step_time.py` in native PyTorch with torchjd.

The anchor the balanced steps of keras-mtl are measured against: the same
models written as a PyTorch user writes them, trained with equal weighting
(the sum of the task losses) and with torchjd's UPGrad (Quinton & Rey 2024,
"Jacobian Descent for Multi-Objective Optimization",
https://arxiv.org/abs/2406.16232) at the level of the shared parameters,
two ways: `autojac` (`mtl_backward` then `jac_to_grad`: the Jacobian of the
shared parameters) and `autogram` (`Engine.compute_gramian` over the shared
modules, weights from the Gramian, one weighted backward pass). Batch 64,
RMSprop, step time = median of `--steps` steps after 2 warm-up steps, EW
timed before and after (the reference is the mean).

torchjd is an optional extra (`pip install -e .[anchor]`, torchjd 0.18).

    python benchmarks/anchor_torchjd.py [--model lstm,seed,conv,transformer,ngrams,mlp,wide]
        [--tasks 3,10] [--steps 10]
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

BATCH = 64
TASKS = {"lstm": "2,10", "seed": "2", "conv": "3,10", "transformer": "4", "mlp": "2,10"}
TASKS["wide"] = "2,10"
TASKS["ngrams"] = "4"


class Seed(nn.Module):
    """Two tweets of 280 bytes as float one-hot, one shared LSTM(64),
    concatenated; one linear head per task (`lstm` and `seed`)."""

    inputs = 2

    def __init__(self, tasks: int) -> None:
        super().__init__()
        self.trunk = nn.LSTM(256, 64, batch_first=True)
        self.heads = nn.ModuleList([nn.Linear(128, 1) for _ in range(tasks)])

    def features(self, x: list[torch.Tensor]) -> torch.Tensor:
        _, (h_a, _) = self.trunk(x[0])
        _, (h_b, _) = self.trunk(x[1])
        return torch.cat([h_a[0], h_b[0]], dim=-1)


class Conv(nn.Module):
    """Conv16-pool-Conv32-pool-Dense64 on 28x28x1; 10-class heads."""

    inputs = 1

    def __init__(self, tasks: int) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Conv2d(1, 16, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Conv2d(16, 32, 3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(2),
            nn.Flatten(),
            nn.Linear(7 * 7 * 32, 64),
            nn.ReLU(),
        )
        self.heads = nn.ModuleList([nn.Linear(64, 10) for _ in range(tasks)])

    def features(self, x: list[torch.Tensor]) -> torch.Tensor:
        return self.trunk(x[0])


class Block(nn.Module):
    """A pre-norm Transformer block (attention, then feed-forward)."""

    def __init__(self, dim: int, heads: int, ff_dim: int) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.norm2 = nn.LayerNorm(dim)
        self.ff = nn.Sequential(
            nn.Linear(dim, ff_dim), nn.ReLU(), nn.Linear(ff_dim, dim)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)
        x = x + self.attention(h, h, h, need_weights=False)[0]
        return x + self.ff(self.norm2(x))


class Trunk(nn.Module):
    """Byte embedding (32), projection to 64, learned positions, one block,
    norm, mean over positions."""

    def __init__(self, length: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(256, 32)
        self.project = nn.Linear(32, 64)
        self.positions = nn.Embedding(length, 64)
        self.block = Block(64, 4, 128)
        self.norm = nn.LayerNorm(64)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.project(self.embedding(ids))
        x = x + self.positions(torch.arange(ids.shape[1]))
        return self.norm(self.block(x)).mean(dim=1)


class Transformer(nn.Module):
    """The TweetEval Transformer over 160 bytes: emotion (4 classes), then
    binary heads."""

    inputs = 1

    def __init__(self, tasks: int) -> None:
        super().__init__()
        self.trunk = Trunk(160)
        widths = [4] + [1] * (tasks - 1) if tasks == 4 else [1] * tasks
        self.heads = nn.ModuleList([nn.Linear(64, w) for w in widths])

    def features(self, x: list[torch.Tensor]) -> torch.Tensor:
        return self.trunk(x[0])


class MLP(nn.Module):
    """Dense 256-128 on 128 features (`wide`: 1024-1024 on 1024); sigmoid
    heads."""

    inputs = 1
    width, units = 128, (256, 128)

    def __init__(self, tasks: int) -> None:
        super().__init__()
        first, second = self.units
        self.trunk = nn.Sequential(
            nn.Linear(self.width, first), nn.ReLU(), nn.Linear(first, second), nn.ReLU()
        )
        self.heads = nn.ModuleList([nn.Linear(second, 1) for _ in range(tasks)])

    def features(self, x: list[torch.Tensor]) -> torch.Tensor:
        return self.trunk(x[0])


MODELS = {"lstm": Seed, "seed": Seed, "conv": Conv, "transformer": Transformer}
MODELS["mlp"] = MLP


class Wide(MLP):
    width, units = 1024, (1024, 1024)


MODELS["wide"] = Wide


class Ngrams(nn.Module):
    """The TweetEval n-gram bag: the mean of a 2^17 x 64 table's rows at
    1,400 n-gram ids per text (`nn.EmbeddingBag`; the ids are given, where
    keras-mtl hashes them inside its step), emotion (4 classes) then
    binary heads."""

    inputs = 1
    slots = 1400

    def __init__(self, tasks: int) -> None:
        super().__init__()
        self.trunk = nn.EmbeddingBag(2**17 + 1, 64, mode="mean")
        widths = [4] + [1] * (tasks - 1) if tasks == 4 else [1] * tasks
        self.heads = nn.ModuleList([nn.Linear(64, w) for w in widths])

    def features(self, x: list[torch.Tensor]) -> torch.Tensor:
        return self.trunk(x[0])


MODELS["ngrams"] = Ngrams


def batch(name: str, model: nn.Module, gen: torch.Generator) -> tuple[list, list]:
    """Random inputs and labels of the model's shapes."""
    if name in ("lstm", "seed"):
        ids = [torch.randint(1, 256, (BATCH, 280), generator=gen) for _ in range(2)]
        x = [nn.functional.one_hot(i, 256).float() for i in ids]
    elif name == "conv":
        x = [torch.randn(BATCH, 1, 28, 28, generator=gen)]
    elif name == "transformer":
        x = [torch.randint(1, 256, (BATCH, 160), generator=gen)]
    elif name == "ngrams":
        x = [torch.randint(1, 2**17 + 1, (BATCH, Ngrams.slots), generator=gen)]
    else:
        x = [torch.randn(BATCH, model.width, generator=gen)]
    y = []
    for head in model.heads:
        width = head.out_features
        if width > 1:
            y.append(torch.randint(0, width, (BATCH,), generator=gen))
        else:
            y.append(torch.randint(0, 2, (BATCH,), generator=gen).float())
    return x, y


def task_losses(model: nn.Module, z: torch.Tensor, y: list) -> list[torch.Tensor]:
    out = []
    for head, target in zip(model.heads, y, strict=True):
        logits = head(z)
        if logits.shape[-1] > 1:
            out.append(nn.functional.cross_entropy(logits, target))
        else:
            out.append(
                nn.functional.binary_cross_entropy_with_logits(logits[:, 0], target)
            )
    return out


def stepper(method: str, model: nn.Module, x: list, y: list) -> Callable[[], None]:
    """One training step of `method` ("ew", "autojac" or "autogram")."""
    from torchjd.aggregation import UPGrad, UPGradWeighting
    from torchjd.autogram import Engine
    from torchjd.autojac import jac_to_grad, mtl_backward

    optimizer = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    shared = list(model.trunk.parameters())
    engine = Engine(model.trunk, batch_dim=None) if method == "autogram" else None
    aggregator, weighting = UPGrad(), UPGradWeighting()

    def step() -> None:
        optimizer.zero_grad()
        z = model.features(x)
        losses = task_losses(model, z, y)
        if method == "ew":
            torch.stack(losses).sum().backward()
        elif method == "autojac":
            mtl_backward(losses, features=z)
            jac_to_grad(shared, aggregator)
        else:
            stacked = torch.stack(losses)
            weights = weighting(engine.compute_gramian(stacked))
            stacked.backward(weights)
        optimizer.step()

    return step


def median_step(step: Callable[[], None], steps: int) -> float:
    for _ in range(2):
        step()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run(name: str, tasks: int, steps: int) -> dict[str, float]:
    """Step times of EW, autojac and autogram for one model, EW twice."""
    out: dict[str, Any] = {}
    for method in ("ew", "autojac", "autogram", "ew"):
        torch.manual_seed(0)
        gen = torch.Generator().manual_seed(0)
        model = MODELS[name](tasks)
        x, y = batch(name, model, gen)
        try:
            seconds = median_step(stepper(method, model, x, y), steps)
        except Exception as error:  # a layer torchjd's engine does not serve
            print(f"{name}, {method}: {type(error).__name__}: {error}"[:300])
            seconds = float("nan")
        out.setdefault(method, []).append(seconds)
    return {k: statistics.mean(v) for k, v in out.items()}


def main() -> None:
    import platform

    import torchjd

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="lstm,conv,transformer,mlp")
    parser.add_argument("--tasks", default=None, help="default: per model")
    parser.add_argument("--steps", type=int, default=10)
    args = parser.parse_args()
    version = getattr(torchjd, "__version__", None)
    if version is None:
        from importlib.metadata import version as dist_version

        version = dist_version("torchjd")
    print(
        f"\n### native PyTorch {torch.__version__}, torchjd {version} "
        f"({platform.machine()}, {torch.get_num_threads()} threads)\n"
    )
    print(
        "| model | tasks | EW step s | UPGrad autojac s | ratio | UPGrad autogram s | ratio |"
    )
    print("|---|---|---|---|---|---|---|")
    for name in args.model.split(","):
        for tasks in (args.tasks or TASKS[name]).split(","):
            r = run(name, int(tasks), args.steps)
            print(
                f"| {name} | {tasks} | {r['ew']:.4f} | {r['autojac']:.4f} | "
                f"{r['autojac'] / r['ew']:.2f}x | {r['autogram']:.4f} | "
                f"{r['autogram'] / r['ew']:.2f}x |",
                flush=True,
            )


if __name__ == "__main__":
    main()
