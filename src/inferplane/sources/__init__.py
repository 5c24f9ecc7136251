"""Where model files come from: local directories, generated demo models, Python packages."""

from inferplane.sources.resolve import SourceError, cache_dir, resolve_source

__all__ = ["SourceError", "cache_dir", "resolve_source"]
