"""omnirouter: dense, Switch and Omni-router CTC Transformers for speech recognition."""

__version__ = "0.1.0"
