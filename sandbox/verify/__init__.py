"""``python -m sandbox verify``: every theory claim × every applicable rule, predicted vs measured."""
from .base import FAMILIES, ROW_COLUMNS, VerifyConfig, verdict

__all__ = ["FAMILIES", "ROW_COLUMNS", "VerifyConfig", "verdict"]
