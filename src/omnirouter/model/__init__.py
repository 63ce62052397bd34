"""Models: the CTC Transformer encoder in its dense, Switch and Omni-router families."""

from omnirouter.model.config import Family, ModelConfig
from omnirouter.model.ctc_model import (
    BLANK_ID,
    CtcModel,
    ModelOutput,
    build_model,
    count_parameters,
)
from omnirouter.model.routing import RoutingInfo, RoutingOverride

__all__ = [
    "BLANK_ID",
    "CtcModel",
    "Family",
    "ModelConfig",
    "ModelOutput",
    "RoutingInfo",
    "RoutingOverride",
    "build_model",
    "count_parameters",
]
