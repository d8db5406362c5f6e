"""The registered alignment methods (see `model.registry`), one module each."""
