"""GGUF tensors -> HF tensors: names, rotary row order, dequantization, Q8_0 as int8 rows."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch
from gguf import ReaderTensor
from gguf.quants import dequantize
from safetensors.torch import load_file

from inferplane.sources import SourceError
from inferplane.sources.gguf_import import import_gguf
from inferplane.sources.gguf_meta import GgufFile
from inferplane.sources.gguf_tensors import check_types, int8_tensors, q8_0_rows
from tests.sources.gguf_files import Q, TinyLlama, TypeFor, random_llama, write_llama_gguf

SHAPE = TinyLlama()
# One file, many storage types. Layer 0's gate/up and layer 1's down are Q8_0 projections the
# engine runs alone or fused with Q8_0 partners: int8. Layer 1's q and v are Q8_0 beside an
# F16 k, and its up is Q8_0 beside a Q5_1 gate: those are dequantized.
MIXED = {
    0: {"attn_q": Q.F16, "attn_k": Q.BF16, "attn_output": Q.Q4_0, "ffn_gate": Q.Q8_0},
    1: {"attn_q": Q.Q8_0, "attn_k": Q.F16, "attn_v": Q.Q8_0, "attn_output": Q.Q5_0},
}
MIXED[0] |= {"ffn_up": Q.Q8_0, "ffn_down": Q.Q4_1}
MIXED[1] |= {"ffn_gate": Q.Q5_1, "ffn_up": Q.Q8_0, "ffn_down": Q.Q8_0}


@dataclass(frozen=True)
class Imported:
    gguf: GgufFile
    tensors: dict[str, torch.Tensor]

    def source(self, name: str) -> ReaderTensor:
        return next(t for t in self.gguf.tensors if t.name == name)


def _import(
    directory: Path, weights: dict[str, torch.Tensor], tokenizer_dir: Path, type_for: TypeFor
) -> Imported:
    directory.mkdir(parents=True, exist_ok=True)
    path = write_llama_gguf(directory / "m.gguf", weights, SHAPE, tokenizer_dir, type_for=type_for)
    out = directory / "hf"
    out.mkdir()
    import_gguf(path, out, progress=False)
    return Imported(GgufFile.open(path), load_file(str(out / "model.safetensors")))


def _mixed_type(name: str) -> Q:
    if not name.startswith("blk."):
        return Q.F32
    _, layer, part, _ = name.split(".")
    return MIXED[int(layer)].get(part, Q.F32)


@pytest.fixture(scope="module")
def weights() -> dict[str, torch.Tensor]:
    return random_llama(SHAPE, seed=3)


@pytest.fixture(scope="module")
def mixed(
    tmp_path_factory: pytest.TempPathFactory, weights: dict[str, torch.Tensor], tiny_model_dir: Path
) -> Imported:
    return _import(tmp_path_factory.mktemp("mixed"), weights, tiny_model_dir, _mixed_type)


def test_float32_file_gives_back_the_original_weights(
    tmp_path: Path, weights: dict[str, torch.Tensor], tiny_model_dir: Path
) -> None:
    # Names, the q/k row order and the untied head all undone: bit-identical tensors.
    got = _import(tmp_path, weights, tiny_model_dir, lambda name: Q.F32).tensors
    assert got.keys() == weights.keys()
    for name, tensor in weights.items():
        assert torch.equal(got[name], tensor), name


def test_float_types_keep_their_dtype(mixed: Imported, weights: dict[str, torch.Tensor]) -> None:
    q, k = "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight"
    assert mixed.tensors[q].dtype == torch.float16
    assert torch.equal(mixed.tensors[q], weights[q].half())
    assert mixed.tensors[k].dtype == torch.bfloat16
    assert torch.equal(mixed.tensors[k], weights[k].bfloat16())


@pytest.mark.parametrize(
    ("gguf_name", "kind"),
    [
        ("blk.0.attn_output.weight", Q.Q4_0),
        ("blk.0.ffn_down.weight", Q.Q4_1),
        ("blk.1.attn_output.weight", Q.Q5_0),
        ("blk.1.ffn_gate.weight", Q.Q5_1),
        ("blk.1.ffn_up.weight", Q.Q8_0),
    ],
    ids=lambda value: getattr(value, "name", value),
)
def test_block_types_dequantize_exactly_as_the_gguf_reader(
    mixed: Imported, weights: dict[str, torch.Tensor], gguf_name: str, kind: Q
) -> None:
    source = mixed.source(gguf_name)
    assert source.tensor_type == kind
    name = _hf_name(gguf_name)
    got = mixed.tensors[name]
    assert got.dtype == torch.float32
    assert torch.equal(got, torch.from_numpy(dequantize(source.data, kind)))
    # and still the weight it was quantized from, to within half a 4-bit step or so
    error = float((got - weights[name]).abs().max())
    assert error < 0.1 * float(weights[name].abs().max())


def test_q8_0_projections_become_int8_rows(
    mixed: Imported, weights: dict[str, torch.Tensor]
) -> None:
    for layer, part in ((0, "mlp.gate_proj"), (0, "mlp.up_proj"), (1, "mlp.down_proj")):
        name = f"model.layers.{layer}.{part}.weight"
        codes, scale = mixed.tensors[name], mixed.tensors[f"{name}_scale"]
        assert codes.dtype == torch.int8 and scale.shape == (codes.shape[0],)
        restored = codes.float() * scale[:, None]
        # Q8_0's own rounding plus the rescale: about one int8 step of the row at most
        assert ((restored - weights[name]).abs() <= 1.1 * scale[:, None]).all()


def test_q8_0_beside_other_types_in_a_fused_layer_is_dequantized(mixed: Imported) -> None:
    chosen = int8_tensors(mixed.gguf.tensors)
    assert chosen == {"blk.0.ffn_gate.weight", "blk.0.ffn_up.weight", "blk.1.ffn_down.weight"}
    q = mixed.tensors["model.layers.1.self_attn.q_proj.weight"]
    assert q.dtype == torch.float32
    assert "model.layers.1.self_attn.q_proj.weight_scale" not in mixed.tensors


def test_q8_0_codes_survive_where_blocks_share_the_row_scale(
    tmp_path: Path, tiny_model_dir: Path
) -> None:
    # Rows whose every block has the same largest value quantize to one scale per row, so
    # the int8 codes must come through untouched.
    weights = random_llama(SHAPE, seed=4)
    name = "model.layers.0.mlp.up_proj.weight"
    weights[name].view(SHAPE.intermediate_size, -1, 32)[:, :, 0] = 0.5  # ten sigmas: the peak
    imported = _import(tmp_path, weights, tiny_model_dir, lambda n: Q.Q8_0)
    source = imported.source("blk.0.ffn_up.weight")
    blocks = np.asarray(source.data).reshape(SHAPE.intermediate_size, -1, 34)
    codes = blocks[..., 2:].copy().view(np.int8).reshape(SHAPE.intermediate_size, -1)
    assert torch.equal(imported.tensors[name], torch.from_numpy(codes))


def test_q8_0_rescaled_codes_stay_within_half_a_step(mixed: Imported) -> None:
    tensor = mixed.source("blk.1.ffn_down.weight")
    codes, scales = q8_0_rows(tensor)
    exact = dequantize(tensor.data, Q.Q8_0)
    error = np.abs(codes.astype(np.float32) * scales[:, None] - exact)
    assert (error <= scales[:, None] / 2 + 1e-9).all()
    assert codes.dtype == np.int8 and scales.dtype == np.float32


def test_unsupported_type_is_refused_naming_type_and_tensor(
    tmp_path: Path, weights: dict[str, torch.Tensor], tiny_model_dir: Path
) -> None:
    path = write_llama_gguf(
        tmp_path / "m.gguf",
        weights,
        SHAPE,
        tiny_model_dir,
        type_for=lambda name: Q.IQ4_NL if name == "blk.0.ffn_up.weight" else Q.F16,
    )
    with pytest.raises(SourceError, match=r"'blk\.0\.ffn_up\.weight' is stored as IQ4_NL"):
        check_types(GgufFile.open(path).tensors)


def _hf_name(gguf_name: str) -> str:
    _, layer, part, suffix = gguf_name.split(".")
    parts = {
        "attn_output": "self_attn.o_proj",
        "ffn_gate": "mlp.gate_proj",
        "ffn_up": "mlp.up_proj",
        "ffn_down": "mlp.down_proj",
    }
    return f"model.layers.{layer}.{parts[part]}.{suffix}"
