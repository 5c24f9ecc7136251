"""Where model files come from: local directories, generated demo models, Python packages,
GGUF files (imported into the cache on first use)."""

from inferplane.sources.errors import SourceError
from inferplane.sources.resolve import cache_dir, resolve_source

__all__ = ["SourceError", "cache_dir", "resolve_source"]
