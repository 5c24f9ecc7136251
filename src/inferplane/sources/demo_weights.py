"""A demo model's random weights: the one part of writing a demo model that needs torch, kept
apart so that everything else that names a demo model (the CLI, the model sources, the
planner) loads without it."""

from pathlib import Path

import torch
from safetensors.torch import save_file

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


Shapes = dict[str, tuple[int, ...]]


def save_random_weights(shapes: Shapes, dtype: str, std: float, seed: int, path: Path) -> None:
    """Draw the weights and write them as one safetensors file."""
    save_file(random_weights(shapes, dtype, std, seed), str(path), metadata={"format": "pt"})


def random_weights(shapes: Shapes, dtype: str, std: float, seed: int) -> dict[str, torch.Tensor]:
    """Normal(0, std) matrices and unit norm scales, drawn in the shapes' order from one seed."""
    generator = torch.Generator().manual_seed(seed)
    weights: dict[str, torch.Tensor] = {}
    for name, dims in shapes.items():
        if name.endswith("norm.weight"):
            tensor = torch.ones(dims)
        else:
            tensor = torch.empty(dims).normal_(0.0, std, generator=generator)
        weights[name] = tensor.to(_DTYPES[dtype]).contiguous()
    return weights
