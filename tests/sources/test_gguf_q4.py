"""A GGUF file's Q4_0 / Q4_1 projections kept as 4-bit blocks where q4_0 is asked: the bits
as stored (no requantization), the rows in the engine's order, the default import untouched."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from inferplane.engine.compute.cpu_kernels.ops_q4 import Q4Blocks
from inferplane.engine.compute.models.llama import DecoderLayer
from inferplane.engine.compute.quant import Int8Linear
from inferplane.engine.compute.quant4 import Q4Linear, dequantize_q4
from inferplane.engine.compute.runner import TorchModelRunner
from inferplane.engine.core.batch import StepBatch
from inferplane.engine.core.config import EngineConfig
from inferplane.sources.gguf_import import gguf_model_dir
from inferplane.sources.gguf_meta import GgufFile
from inferplane.sources.gguf_tensors import q4_tensors, stored_q4_weights
from tests.engine.reference import chunk
from tests.sources.gguf_files import Q, TinyLlama, random_llama, write_llama_gguf

SHAPE = TinyLlama()
# q, k and v Q4_0; o Q4_1; gate Q4_0 beside a Q4_1 up (one fused layer); down Q8_0 in layer 0
# (the int8 path) and Q4_0 in layer 1
TYPES = {"attn_q": Q.Q4_0, "attn_k": Q.Q4_0, "attn_v": Q.Q4_0, "attn_output": Q.Q4_1}
TYPES |= {"ffn_gate": Q.Q4_0, "ffn_up": Q.Q4_1, "ffn_down": Q.Q4_0}


def _type(name: str) -> Q:
    if not name.startswith("blk."):
        return Q.Q8_0 if name == "output.weight" else Q.F32
    _, layer, part, _ = name.split(".")
    return Q.Q8_0 if (layer, part) == ("0", "ffn_down") else TYPES.get(part, Q.F32)


@pytest.fixture(scope="module")
def q4_gguf(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Path:
    directory = tmp_path_factory.mktemp("q4")
    weights = random_llama(SHAPE, seed=5)
    return write_llama_gguf(directory / "m.gguf", weights, SHAPE, tiny_model_dir, type_for=_type)


@pytest.fixture(scope="module")
def imported(q4_gguf: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return gguf_model_dir(q4_gguf, tmp_path_factory.mktemp("cache"), progress=False)


def _blocks(weights: dict[str, torch.Tensor], name: str) -> Q4Blocks:
    stem = name.removesuffix("weight")
    return Q4Blocks(weights[name], weights[f"{stem}weight_scale"], weights.get(f"{stem}weight_min"))


def test_the_4bit_groups_are_chosen_and_the_rest_left_alone(q4_gguf: Path) -> None:
    chosen = q4_tensors(GgufFile.open(q4_gguf).tensors)
    parts = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up")
    expected = {f"blk.{layer}.{part}.weight" for layer in (0, 1) for part in parts}
    assert chosen == expected | {"blk.1.ffn_down.weight"}


def test_blocks_hold_the_imported_values_exactly(imported: Path) -> None:
    """Dequantized, the blocks are the default import's float32 values bit for bit (q and k
    rows included, put back in halves order), and the default import is still float32."""
    blocks = stored_q4_weights(imported)
    dense = load_file(str(imported / "model.safetensors"))
    codes = [name for name, tensor in blocks.items() if tensor.dtype == torch.uint8]
    assert len(codes) == 13
    for name in codes:
        assert dense[name].dtype == torch.float32
        assert torch.equal(dequantize_q4(_blocks(blocks, name)), dense[name])
    assert "model.layers.0.self_attn.o_proj.weight_min" in blocks  # Q4_1
    assert "model.layers.0.self_attn.q_proj.weight_min" not in blocks  # Q4_0


def test_blocks_are_the_bits_the_file_stores(q4_gguf: Path, imported: Path) -> None:
    """No requantization: the codes and scales of a Q4_1 tensor are the file's bytes."""
    blocks = stored_q4_weights(imported)
    source = next(t for t in GgufFile.open(q4_gguf).tensors if t.name == "blk.0.attn_output.weight")
    raw = np.asarray(source.data).reshape(SHAPE.hidden_size, -1, 20)
    name = "model.layers.0.self_attn.o_proj.weight"
    assert np.array_equal(blocks[name].numpy().reshape(raw.shape[0], -1, 16), raw[..., 4:])
    scale = raw[..., :2].copy().view(np.float16)[..., 0]
    assert np.array_equal(blocks[f"{name.removesuffix('weight')}weight_scale"].numpy(), scale)


def test_a_directory_without_its_gguf_file_has_no_blocks(
    imported: Path, tiny_model_dir: Path, tmp_path: Path
) -> None:
    assert stored_q4_weights(tiny_model_dir) == {}
    moved = tmp_path / "copy"
    moved.mkdir()
    record = (imported / "import.json").read_text().replace('"size": ', '"size": 1')
    (moved / "import.json").write_text(record)
    assert stored_q4_weights(moved) == {}


def test_q4_0_loads_the_blocks_and_keeps_the_logits(imported: Path) -> None:
    """q4_0 runs the file's 4-bit projections on the 4-bit path (the Q4_0 gate beside the Q4_1
    up as one layer), Q8_0 on the int8 path, the head int8; the values are the default
    load's, so the logits differ by the input's rounding in the decode kernel only."""

    def runner(quantization: str) -> TorchModelRunner:
        config = EngineConfig(
            model=str(imported),
            dtype="float32",
            quantization=quantization,  # type: ignore[arg-type]
            kv_cache_bytes=1 << 20,
        )
        return TorchModelRunner.from_config(config)

    dense, q4 = runner("none"), runner("q4_0")
    layers = [layer for layer in q4.model.layers if isinstance(layer, DecoderLayer)]
    assert len(layers) == 2
    assert all(isinstance(layer.attn.qkv, Q4Linear) for layer in layers)
    assert isinstance(layers[0].mlp.gate_up, Q4Linear) and layers[0].mlp.gate_up.min is not None
    assert isinstance(layers[0].mlp.down, Int8Linear) and isinstance(layers[1].mlp.down, Q4Linear)
    assert isinstance(q4.model.lm_head, Int8Linear)
    batch = StepBatch([chunk("p", list(range(3, 40)), 0, [0, 1, 2])])
    prefill = F.cosine_similarity(dense.forward_logits(batch), q4.forward_logits(batch), dim=-1)
    assert float(prefill.min()) > 0.99
