"""How numbers read in every table and sentence of the report (one place, one meaning each)."""

from __future__ import annotations

import math

from omnirouter.evaluate.tables import format_number

MISSING = "–"  # an unmeasured or undefined number (None or NaN)


def _missing(value: float | None) -> bool:
    return value is None or math.isnan(value)


def number(value: float | None, digits: int = 2) -> str:
    """'12.34'; '–' for None or NaN."""
    return format_number(value, digits)


def signed_percent(value: float | None, missing: str = MISSING) -> str:
    """A relative change already in percent: '+1.2%' / '-3.4%'."""
    return missing if _missing(value) else f"{value:+.1f}%"


def percent(fraction: float | None) -> str:
    """A fraction as a percentage with one decimal, no sign: 0.123 → '12.3'."""
    return MISSING if _missing(fraction) else f"{100 * fraction:.1f}"
