"""Model shapes for planning: a frozen ModelShape, public presets, and config.json parsing.

Only the tensor shapes matter to the planner, so a shape is a handful of integers. The
parameter count is computed from them, for a dense decoder (Llama / Mistral / Qwen2 family):

    embeddings  vocab x hidden                         (+ the same again for an untied lm_head)
    attention   hidden x (heads + 2 x kv_heads) x head_dim   q, k, v   (GQA: kv_heads <= heads)
                heads x head_dim x hidden                     o
                (heads + 2 x kv_heads) x head_dim             q/k/v biases, where the model has them
    MLP         3 x hidden x intermediate                    gate, up, down (SwiGLU)
    norms       2 x hidden per layer + hidden for the final norm (RMSNorm scales)

Mixture-of-experts and sliding-window models are not modelled (dense decoders only).
The presets hold the public shapes published with each model's config.json.
"""

from collections.abc import Mapping
from dataclasses import dataclass

_BILLION = 1_000_000_000


@dataclass(frozen=True)
class ModelShape:
    """The shapes of a dense decoder-only transformer."""

    name: str
    vocab_size: int
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    intermediate_size: int
    tie_word_embeddings: bool = False
    max_context: int = 4096
    head_dim: int = 0  # 0 means hidden_size // num_heads
    attention_bias: bool = False

    def __post_init__(self) -> None:
        if self.num_heads <= 0 or self.num_kv_heads <= 0 or self.num_heads % self.num_kv_heads:
            raise ValueError(
                f"{self.name}: num_heads ({self.num_heads}) must be a positive multiple of "
                f"num_kv_heads ({self.num_kv_heads})"
            )
        if self.head_dim == 0:
            object.__setattr__(self, "head_dim", self.hidden_size // self.num_heads)

    @property
    def embedding_parameters(self) -> int:
        """Input embeddings plus the lm_head when it is not tied to them."""
        tables = 1 if self.tie_word_embeddings else 2
        return tables * self.vocab_size * self.hidden_size

    @property
    def layer_parameters(self) -> int:
        """Linear weights of one layer (attention + MLP), the part quantization applies to."""
        q_width = self.num_heads * self.head_dim
        kv_width = self.num_kv_heads * self.head_dim
        attention = self.hidden_size * (q_width + 2 * kv_width) + q_width * self.hidden_size
        return attention + 3 * self.hidden_size * self.intermediate_size

    @property
    def small_parameters(self) -> int:
        """Norm scales and attention biases: kept at 16 bits whatever the weight format."""
        biases = (self.num_heads + 2 * self.num_kv_heads) * self.head_dim
        per_layer = 2 * self.hidden_size + (biases if self.attention_bias else 0)
        return self.num_layers * per_layer + self.hidden_size

    @property
    def linear_parameters(self) -> int:
        return self.num_layers * self.layer_parameters

    @property
    def parameter_count(self) -> int:
        return self.linear_parameters + self.embedding_parameters + self.small_parameters

    def describe(self) -> str:
        return (
            f"{self.name}: {self.parameter_count / _BILLION:.2f}B parameters, "
            f"{self.num_layers} layers, hidden {self.hidden_size}, "
            f"{self.num_heads} heads / {self.num_kv_heads} KV heads x {self.head_dim}"
        )


def _shape(
    name: str, *dims: int, tied: bool = False, context: int, bias: bool = False
) -> ModelShape:
    vocab, hidden, layers, heads, kv_heads, intermediate = dims
    return ModelShape(
        name, vocab, hidden, layers, heads, kv_heads, intermediate, tied, context, 0, bias
    )


def preset_shapes() -> dict[str, ModelShape]:
    """Public shapes of well-known models (a fresh dict: callers may not share state)."""
    shapes = [
        _shape("llama-2-7b", 32000, 4096, 32, 32, 32, 11008, context=4096),
        _shape("llama-2-13b", 32000, 5120, 40, 40, 40, 13824, context=4096),
        _shape("llama-2-70b", 32000, 8192, 80, 64, 8, 28672, context=4096),
        _shape("llama-3-8b", 128256, 4096, 32, 32, 8, 14336, context=8192),
        _shape("llama-3-70b", 128256, 8192, 80, 64, 8, 28672, context=8192),
        _shape("llama-3.1-8b", 128256, 4096, 32, 32, 8, 14336, context=131072),
        _shape("llama-3.1-70b", 128256, 8192, 80, 64, 8, 28672, context=131072),
        _shape("llama-3.1-405b", 128256, 16384, 126, 128, 8, 53248, context=131072),
        _shape("mistral-7b", 32000, 4096, 32, 32, 8, 14336, context=32768),
        _shape("qwen2.5-0.5b", 151936, 896, 24, 14, 2, 4864, tied=True, context=32768, bias=True),
        _shape("qwen2.5-1.5b", 151936, 1536, 28, 12, 2, 8960, tied=True, context=32768, bias=True),
        _shape("qwen2.5-7b", 152064, 3584, 28, 28, 4, 18944, context=32768, bias=True),
        _shape("qwen2.5-14b", 152064, 5120, 48, 40, 8, 13824, context=32768, bias=True),
        _shape("qwen2.5-32b", 152064, 5120, 64, 40, 8, 27648, context=32768, bias=True),
        _shape("qwen2.5-72b", 152064, 8192, 80, 64, 8, 29568, context=32768, bias=True),
    ]
    return {shape.name: shape for shape in shapes}


def shape_from_config(name: str, config: Mapping[str, object]) -> ModelShape:
    """A ModelShape from a Hugging Face config.json already parsed into a mapping."""
    heads = _int(config, "num_attention_heads")
    hidden = _int(config, "hidden_size")
    return ModelShape(
        name=name,
        vocab_size=_int(config, "vocab_size"),
        hidden_size=hidden,
        num_layers=_int(config, "num_hidden_layers"),
        num_heads=heads,
        num_kv_heads=_int(config, "num_key_value_heads", heads),
        intermediate_size=_int(config, "intermediate_size"),
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        max_context=_int(config, "max_position_embeddings", 4096),
        head_dim=_int(config, "head_dim", hidden // heads) or hidden // heads,
        attention_bias=_has_attention_bias(config),
    )


def _has_attention_bias(config: Mapping[str, object]) -> bool:
    # Qwen2 configs do not say so, but their q/k/v projections carry biases.
    return bool(config.get("attention_bias", False)) or config.get("model_type") == "qwen2"


def _int(config: Mapping[str, object], key: str, default: int | None = None) -> int:
    value = config.get(key, default)
    if value is None:
        value = default
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(
            f"config.json: {key} must be an integer (got {value!r}); is this a decoder-only "
            "transformer config such as Llama, Mistral or Qwen2?"
        )
    return value
