"""The data plane: scheduler, paged KV cache, model runner, sampling and the async front."""
