"""A CPU model's weights in transparent huge pages, where the host's kernel offers them.

Decode reads every weight once a token, as one stream per product. In 4 KiB pages the stream
costs a TLB walk every 4 KiB and the hardware prefetcher stops at every page boundary; the
weights as loaded sit in such pages (torch's allocations are not advised for huge pages, and
the host's THP mode is commonly `madvise`). Copied into one anonymous mapping advised
MADV_HUGEPAGE, SmolLM2-135M's 121 products at one row on one Zen 4 thread (interleaved, 16
rounds, load 1.4): bfloat16 21.4 -> 28.1 GB/s (1.32x), float16 17.3 -> 23.9 GB/s (1.38x).

`into_huge_pages` copies a model's large CPU buffers into such a mapping and points the modules
at the copies (tied buffers stay tied); the originals are freed as they lose their last
reference. Anything that kept a buffer's address (a compiled layer stack) must be rebuilt.
Where THP is off, or the platform has no MADV_HUGEPAGE, or INFERPLANE_HUGE_PAGES=0 (an
operator who wants no THP for the engine), nothing moves.
"""

import mmap
from pathlib import Path

import torch
from torch import nn

from inferplane.engine.compute.cpu_features import switched_off

# Smaller buffers (norms, biases) stay where they are. At 1 MiB SmolLM2's output projections
# (0.66 MB each in bfloat16, a tenth of the layers' bytes) stayed in 4 KiB pages: moving them
# too took the batch-1 step 11.80 -> 11.55 ms (1.02x, twelve interleaved rounds, load 1.7).
MIN_BYTES = 64 << 10
_ALIGN = 64  # each copy starts on a cache line, as the kernels' loads expect
_THP_MODE = Path("/sys/kernel/mm/transparent_hugepage/enabled")
DISABLE_ENV = "INFERPLANE_HUGE_PAGES"


def thp_mode(path: Path = _THP_MODE) -> str:
    """The kernel's THP mode (the bracketed word: always, madvise or never), '' if unknown."""
    try:
        text = path.read_text()
    except OSError:
        return ""
    start, end = text.find("["), text.find("]")
    return text[start + 1 : end] if 0 <= start < end else ""


def huge_pages_available() -> bool:
    if switched_off(DISABLE_ENV):
        return False
    return hasattr(mmap, "MADV_HUGEPAGE") and thp_mode() in {"always", "madvise"}


def into_huge_pages(model: nn.Module, skip: tuple[type[nn.Module], ...] = ()) -> int:
    """Move the model's contiguous CPU buffers of MIN_BYTES or more (but those of `skip`
    modules) into one huge-page mapping; returns the bytes moved (0 where none can be)."""
    if not huge_pages_available():
        return 0
    groups: dict[tuple[int, tuple[int, ...], torch.dtype], list[tuple[nn.Module, str]]] = {}
    sizes = {}
    for module, name, tensor in _large_buffers(model, skip):
        groups.setdefault(_key(tensor), []).append((module, name))
        sizes[_key(tensor)] = -(-tensor.numel() * tensor.element_size() // _ALIGN) * _ALIGN
    total = sum(sizes.values())
    if not total:
        return 0
    arena = mmap.mmap(-1, total, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    arena.madvise(mmap.MADV_HUGEPAGE)
    flat = torch.frombuffer(arena, dtype=torch.uint8)  # the tensors keep the mapping alive
    offset = 0
    for key, owners in groups.items():
        # every holder of one buffer at once, so the original is freed before the next copy:
        # the load's peak is the model plus one buffer, not two models
        first, name = owners[0]
        copy = _copy_into(flat, offset, first._buffers[name])  # type: ignore[arg-type]
        for module, held in owners:
            module._buffers[held] = copy
        offset += sizes[key]
    return total


def empty_in_huge_pages(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor | None:
    """A zeroed CPU tensor in its own huge-page mapping (a fresh anonymous mapping reads as
    zeros), or None where huge pages are not available."""
    size = torch.Size(shape).numel() * torch.empty((), dtype=dtype).element_size()
    if not huge_pages_available() or size < MIN_BYTES:
        return None
    arena = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    arena.madvise(mmap.MADV_HUGEPAGE)
    return torch.frombuffer(arena, dtype=torch.uint8).view(dtype).view(shape)


def _large_buffers(
    model: nn.Module, skip: tuple[type[nn.Module], ...]
) -> list[tuple[nn.Module, str, torch.Tensor]]:
    found = []
    for module in model.modules():
        if isinstance(module, skip):
            continue
        for name, tensor in module._buffers.items():
            if _movable(tensor):
                assert tensor is not None
                found.append((module, name, tensor))
    return found


def _movable(tensor: torch.Tensor | None) -> bool:
    return (
        tensor is not None
        and tensor.device.type == "cpu"
        and tensor.layout == torch.strided
        and tensor.is_contiguous()
        and tensor.numel() * tensor.element_size() >= MIN_BYTES
    )


def _key(tensor: torch.Tensor) -> tuple[int, tuple[int, ...], torch.dtype]:
    """The same memory seen the same way (a tied weight held by two modules) moves once."""
    return tensor.data_ptr(), tuple(tensor.shape), tensor.dtype


def _copy_into(flat: torch.Tensor, offset: int, tensor: torch.Tensor) -> torch.Tensor:
    size = tensor.numel() * tensor.element_size()
    copy = flat[offset : offset + size].view(tensor.dtype).view(tensor.shape)
    copy.copy_(tensor)
    return copy
