"""inferplane: a self-hostable AI inference platform."""

__version__ = "0.1.0"
