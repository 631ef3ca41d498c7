"""gemma-code: a private terminal coding assistant for Gemma 4 through llama.cpp."""

__version__ = "0.1.0"
