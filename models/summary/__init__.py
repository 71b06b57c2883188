"""Architecture summaries: torchsummary table, JSON and Mermaid block diagrams."""

from models.summary.report import Summary, SummaryRow
from models.summary.trace import summarize

__all__ = ["Summary", "SummaryRow", "summarize"]
