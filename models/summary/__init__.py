"""Architecture summaries: torchsummary table, JSON and Mermaid block diagrams."""

from typing import TYPE_CHECKING

from models.lazy import lazy_attributes
from models.summary.report import Summary, SummaryRow

if TYPE_CHECKING:
    from models.summary.trace import summarize

# Tracing a model needs torch; rendering a stored summary (`Summary.from_json`) does not.
__getattr__ = lazy_attributes(__name__, {"summarize": "models.summary.trace"})

__all__ = ["Summary", "SummaryRow", "summarize"]
