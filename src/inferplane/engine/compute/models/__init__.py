"""Model definitions the runner executes: the Llama family (Llama, Mistral, Qwen2, Qwen3)."""

from inferplane.engine.compute.models.llama import LlamaModel

__all__ = ["LlamaModel"]
