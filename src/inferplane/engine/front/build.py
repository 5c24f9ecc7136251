"""Building the `LLMEngine` a link drives from an `EngineConfig`: the torch runner and the
model's tokenizer. A link calls it where the engine will step (on its thread, or in the child);
`functools.partial(build_engine, config)` pickles, so the process link can send it to the child.
"""

from inferplane.engine.core.config import EngineConfig
from inferplane.engine.core.engine import LLMEngine
from inferplane.engine.core.protocol import EngineTokenizer


def build_engine(config: EngineConfig, tokenizer: EngineTokenizer | None = None) -> LLMEngine:
    """Load the model named by `config.model` (and its tokenizer, unless given)."""
    # Imported here: torch is heavy, and tests and the simulator build engines without it.
    from inferplane.engine.compute.runner import TorchModelRunner  # noqa: PLC0415
    from inferplane.engine.core.tokenizer import Tokenizer  # noqa: PLC0415
    from inferplane.sources import resolve_source  # noqa: PLC0415

    if tokenizer is None:
        tokenizer = Tokenizer.from_dir(resolve_source(config.model))
    return LLMEngine(config, TorchModelRunner.from_config(config), tokenizer)
