"""The Llama-family decoder over a ragged, flattened step with a paged KV cache.

One class covers Llama 2/3, Mistral, Qwen2 (biases on q/k/v) and Qwen3 (RMSNorm on each
query and key head): the differences are which tensors the checkpoint carries. q/k/v and
gate/up are concatenated at load so each layer runs four matrix products. Projections a
checkpoint stores as int8 with per-row scales are built on the int8 path as they are, and
4-bit blocks (uint8 codes) on the 4-bit path (quant4.py).

The residual stream is carried beside the hidden states (as vLLM does) so each norm can take
the residual add with it: one fused call per norm where compiled CPU kernels apply.
"""

from collections.abc import Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from inferplane.engine.compute.attention import AttentionMetadata, paged_attention
from inferplane.engine.compute.cpu_kernels import CpuKernels
from inferplane.engine.compute.loader import ModelConfig
from inferplane.engine.compute.models.decode_stack import DecodeStack, LayerParts
from inferplane.engine.compute.models.layers import Linear, RMSNorm, Rotary
from inferplane.engine.compute.quant import Int8Linear
from inferplane.engine.compute.quant4 import stored_q4_layer

# Builds a linear layer from a weight [out, in] and optional bias: dense or quantized.
LinearFactory = Callable[[torch.Tensor, torch.Tensor | None], nn.Module]
Weights = Mapping[str, torch.Tensor]


class Attention(nn.Module):
    def __init__(
        self,
        config: ModelConfig,
        weights: Weights,
        prefix: str,
        make: LinearFactory,
        kernels: CpuKernels | None = None,
    ) -> None:
        super().__init__()
        self.kernels = kernels
        names = [f"{prefix}.self_attn.{p}_proj" for p in "qkv"]
        self.qkv = _linear(weights, names, make, kernels)
        self.o = _linear(weights, [f"{prefix}.self_attn.o_proj"], make, kernels)
        self.q_norm = _optional_norm(weights, f"{prefix}.self_attn.q_norm", config)
        self.k_norm = _optional_norm(weights, f"{prefix}.self_attn.k_norm", config)
        self.heads, self.kv_heads, self.head_dim = (
            config.num_heads,
            config.num_kv_heads,
            config.head_dim,
        )

    def forward(
        self,
        x: torch.Tensor,
        rotary: Rotary,
        cos_sin: tuple[torch.Tensor, torch.Tensor],
        meta: AttentionMetadata,
        kv: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        heads, kv_heads = self.heads, self.kv_heads
        qkv = self.qkv(x).view(x.shape[0], heads + 2 * kv_heads, self.head_dim)
        k_cache, v_cache = kv
        if self.kernels is not None and self.q_norm is None:
            # one call: rotate q and k, write k and v into their cache slots
            q = self.kernels.rope_cache(qkv, *cos_sin, meta.slot_mapping, k_cache, v_cache)
            return self._attend(q, meta, kv)
        qk = qkv[:, : heads + kv_heads]  # queries and keys side by side: rotate them at once
        if self.q_norm is not None and self.k_norm is not None:
            qk = torch.cat((self.q_norm(qk[:, :heads]), self.k_norm(qk[:, heads:])), dim=1)
        q, k = torch.split(rotary.rotate(qk, *cos_sin), [heads, kv_heads], dim=1)
        v = qkv[:, heads + kv_heads :]
        k_cache.index_copy_(0, meta.slot_mapping, k)
        v_cache.index_copy_(0, meta.slot_mapping, v)
        return self._attend(q, meta, kv)

    def _attend(
        self, q: torch.Tensor, meta: AttentionMetadata, kv: tuple[torch.Tensor, torch.Tensor]
    ) -> torch.Tensor:
        out: torch.Tensor = self.o(paged_attention(q, kv[0], kv[1], meta, self.kernels))
        return out


class MLP(nn.Module):
    def __init__(
        self,
        weights: Weights,
        prefix: str,
        make: LinearFactory,
        kernels: CpuKernels | None = None,
    ) -> None:
        super().__init__()
        names = [f"{prefix}.mlp.gate_proj", f"{prefix}.mlp.up_proj"]
        self.gate_up = _linear(weights, names, make, kernels)
        self.down = _linear(weights, [f"{prefix}.mlp.down_proj"], make, kernels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # SwiGLU stays in torch, kernels or not: its vectorized exp beat the compiled loop's
        # libm calls at every row count measured (1 row: 6 against 12 us; 512: 0.6 against 5 ms)
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        out: torch.Tensor = self.down(F.silu(gate) * up)
        return out


class DecoderLayer(nn.Module):
    def __init__(
        self,
        config: ModelConfig,
        weights: Weights,
        index: int,
        make: LinearFactory,
        kernels: CpuKernels | None = None,
    ) -> None:
        super().__init__()
        prefix = f"model.layers.{index}"
        eps = config.rms_norm_eps
        self.input_norm = RMSNorm(weights[f"{prefix}.input_layernorm.weight"], eps, kernels)
        self.attn = Attention(config, weights, prefix, make, kernels)
        post = weights[f"{prefix}.post_attention_layernorm.weight"]
        self.post_norm = RMSNorm(post, eps, kernels)
        self.mlp = MLP(weights, prefix, make, kernels)

    def forward(  # noqa: PLR0917
        self,
        h: torch.Tensor,
        residual: torch.Tensor | None,
        rotary: Rotary,
        cos_sin: tuple[torch.Tensor, torch.Tensor],
        meta: AttentionMetadata,
        kv: tuple[torch.Tensor, torch.Tensor],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(this layer's MLP output, the residual stream before it); their sum is the
        layer's output. The first layer gets residual None: h is then the embedding."""
        if residual is None:
            residual, x = h, self.input_norm(h)
        else:
            x, residual = self.input_norm.add_forward(h, residual)
        x, residual = self.post_norm.add_forward(self.attn(x, rotary, cos_sin, meta, kv), residual)
        return self.mlp(x), residual

    def parts(self) -> LayerParts:
        attn, mlp = self.attn, self.mlp
        products = (attn.qkv, attn.o, mlp.gate_up, mlp.down)
        return LayerParts(self.input_norm, self.post_norm, products, attn.q_norm is not None)


class LlamaModel(nn.Module):
    """Embedding, decoder layers, final norm and the LM head (tied or not)."""

    def __init__(
        self,
        config: ModelConfig,
        weights: Weights,
        max_len: int,
        dtype: torch.dtype,
        *,
        make_linear: LinearFactory = Linear,
        make_head: LinearFactory = Linear,
        kernels: CpuKernels | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        self.embed: torch.Tensor
        self.register_buffer("embed", weights["model.embed_tokens.weight"])
        self.layers = nn.ModuleList(
            DecoderLayer(config, weights, i, make_linear, kernels) for i in range(config.num_layers)
        )
        self.norm = RMSNorm(weights["model.norm.weight"], config.rms_norm_eps, kernels)
        self.lm_head = make_head(_lm_head_weight(config, weights), None)
        self.rotary = Rotary(config.rope, config.head_dim, max_len, dtype, self.embed.device)
        shape = (config.num_heads, config.num_kv_heads, config.head_dim)
        layers = [layer.parts() for layer in self.layers if isinstance(layer, DecoderLayer)]
        self.stack = DecodeStack.build(layers, kernels, dtype, shape)

    def forward(
        self,
        token_ids: torch.Tensor,
        positions: torch.Tensor,
        meta: AttentionMetadata,
        kv_cache: torch.Tensor,
    ) -> torch.Tensor:
        """Hidden states [T, hidden] after the last layer (before the final norm).

        kv_cache is [layers, 2, slots, kv_heads, head_dim]; this step's K/V are written in.
        """
        h = F.embedding(token_ids, self.embed)
        residual: torch.Tensor | None = None
        cos_sin = self.rotary.tables(positions)
        if self.stack is not None and self.stack.takes(h.shape[0], meta):
            # decode rows only: every layer in one compiled call (models/decode_stack.py)
            h, residual = self.stack(h, cos_sin, meta, kv_cache)
            return residual + h
        for index, layer in enumerate(self.layers):
            kv = (kv_cache[index, 0], kv_cache[index, 1])
            h, residual = layer(h, residual, self.rotary, cos_sin, meta, kv)
        return h if residual is None else residual + h

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """float32 logits for the given rows only (the ones that sample)."""
        out: torch.Tensor = self.lm_head(self.norm(hidden))
        return out.float()


def _linear(
    weights: Weights, names: list[str], make: LinearFactory, kernels: CpuKernels | None
) -> nn.Module:
    """One layer over the named projections stacked by rows. Weights stored as int8 with a
    `weight_scale` per row (Q8_0 GGUF imports) go to the int8 path whatever `make` is (with
    `kernels`, the compiled int8 linear for float32 decode)."""
    stored = [weights[f"{name}.weight"].dtype for name in names]
    if torch.uint8 in stored:  # 4-bit blocks: a GGUF's Q4_0 / Q4_1 where q4_0 is asked
        return stored_q4_layer(weights, names, _cat_bias(weights, names), kernels)
    if torch.int8 not in stored:
        return make(_cat_weights(weights, names, ".weight"), _cat_bias(weights, names))
    if any(dtype != torch.int8 for dtype in stored):
        raise ValueError(f"{', '.join(names)}: int8 and float weights cannot share one layer")
    scale = _cat_weights(weights, names, ".weight_scale")
    q, bias = _cat_weights(weights, names, ".weight"), _cat_bias(weights, names)
    return Int8Linear(q, scale, bias, kernels=kernels)


def _cat_weights(weights: Weights, names: list[str], suffix: str) -> torch.Tensor:
    parts = [weights[name + suffix] for name in names]
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=0)


def _cat_bias(weights: Weights, names: list[str]) -> torch.Tensor | None:
    """Concatenated biases when the checkpoint has them (Qwen2); zeros fill a missing one."""
    present = [weights.get(f"{name}.bias") for name in names]
    if all(b is None for b in present):
        return None
    rows = [weights[f"{name}.weight"].shape[0] for name in names]
    template = next(b for b in present if b is not None)
    filled = [
        b if b is not None else template.new_zeros(n) for b, n in zip(present, rows, strict=True)
    ]
    return torch.cat(filled)


def _optional_norm(weights: Weights, name: str, config: ModelConfig) -> RMSNorm | None:
    weight = weights.get(f"{name}.weight")
    return None if weight is None else RMSNorm(weight, config.rms_norm_eps)


def _lm_head_weight(config: ModelConfig, weights: Weights) -> torch.Tensor:
    if config.tie_word_embeddings:
        return weights["model.embed_tokens.weight"]
    if "lm_head.weight" not in weights:
        raise ValueError(
            "the checkpoint has no lm_head.weight and config.json says tie_word_embeddings is "
            "false: set tie_word_embeddings true if the head shares the embedding"
        )
    return weights["lm_head.weight"]
