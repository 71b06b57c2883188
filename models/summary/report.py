"""The result of `summarize`: rows, totals and the torchsummary / JSON / Mermaid renderings."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Literal

from models.summary.diagram import DiagramItem, item_from_json, item_to_json, render_mermaid

Shape = tuple[int, ...]

RULE = "-" * 64
DOUBLE_RULE = "=" * 64
ROW_FORMAT = "{:>20}  {:>25} {:>15}"
NAME_WIDTH = 20
BYTES_PER_NUMBER = 4  # torchsummary assumes float32 for every tensor
MB = 1024**2


@dataclass(frozen=True)
class SummaryRow:
    """One module call: a leaf module, a module owning parameters directly, or the root."""

    name: str  # "{ClassName}-{index}", index 1-based in forward-completion order
    type: str
    path: str  # qualified module name inside the model, "" for the root
    output_shapes: tuple[Shape, ...]  # one per output tensor; batch dim = the summary's batch_size
    params: int  # the module's own parameters (recurse=False)
    trainable: int  # how many of `params` require grad
    kernel_size: Shape | None
    mult_adds: int  # per sample

    @property
    def output_shape(self) -> list[int]:
        """Shape of the first output tensor ([] when the call returned no tensor)."""
        return list(self.output_shapes[0]) if self.output_shapes else []

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "path": self.path,
            "output_shape": self.output_shape,
            "output_shapes": [list(shape) for shape in self.output_shapes],
            "params": self.params,
            "trainable": self.trainable,
            "kernel_size": list(self.kernel_size) if self.kernel_size is not None else None,
            "mult_adds": self.mult_adds,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> SummaryRow:
        kernel_size = data["kernel_size"]
        return cls(
            name=data["name"],
            type=data["type"],
            path=data["path"],
            output_shapes=tuple(tuple(shape) for shape in data["output_shapes"]),
            params=data["params"],
            trainable=data["trainable"],
            kernel_size=tuple(kernel_size) if kernel_size is not None else None,
            mult_adds=data["mult_adds"],
        )


@dataclass(frozen=True)
class Summary:
    """Architecture summary of one forward pass; totals count every parameter once."""

    rows: list[SummaryRow]
    input_sizes: tuple[Shape, ...]  # (C, *spatial) per model input, without batch
    batch_size: int
    total_params: int
    trainable_params: int
    diagram: list[DiagramItem] = field(repr=False)

    @property
    def non_trainable_params(self) -> int:
        return self.total_params - self.trainable_params

    @property
    def total_mult_adds(self) -> int:
        """Mult-adds per sample of the whole forward pass."""
        return sum(row.mult_adds for row in self.rows)

    @property
    def input_mb(self) -> float:
        numbers = sum(math.prod(size) for size in self.input_sizes) * self.batch_size
        return abs(numbers * BYTES_PER_NUMBER / MB)

    @property
    def forward_backward_mb(self) -> float:
        """Every row's outputs, twice (activations and their gradients)."""
        numbers = sum(abs(math.prod(shape)) for row in self.rows for shape in row.output_shapes)
        return 2 * numbers * BYTES_PER_NUMBER / MB

    @property
    def params_mb(self) -> float:
        return abs(self.total_params * BYTES_PER_NUMBER / MB)

    @property
    def total_mb(self) -> float:
        return self.input_mb + self.forward_backward_mb + self.params_mb

    def to_text(self, *, extras: bool = False) -> str:
        """The torchsummary table (MDNC revision), without a trailing newline.

        `extras` appends lines torchsummary does not have (total mult-adds) below the table.
        """
        lines = [RULE, ROW_FORMAT.format("Layer (type)", "Output Shape", "Param #"), DOUBLE_RULE]
        lines += [line for row in self.rows for line in _row_lines(row)]
        lines += [
            DOUBLE_RULE,
            f"Total params: {self.total_params:,}",
            f"Trainable params: {self.trainable_params:,}",
            f"Non-trainable params: {self.non_trainable_params:,}",
            RULE,
            f"Input size (MB): {self.input_mb:0.2f}",
            f"Forward/backward pass size (MB): {self.forward_backward_mb:0.2f}",
            f"Params size (MB): {self.params_mb:0.2f}",
            f"Estimated Total Size (MB): {self.total_mb:0.2f}",
            RULE,
        ]
        if extras:
            lines.append(f"Total mult-adds: {self.total_mult_adds:,}")
        return "\n".join(lines)

    def to_json(self) -> dict[str, Any]:
        """A plain, JSON-serialisable dict: inputs, rows, totals and the block diagram;
        `Summary.from_json` reads it back."""
        return {
            "input_size": [list(size) for size in self.input_sizes],
            "batch_size": self.batch_size,
            "rows": [row.to_json() for row in self.rows],
            "totals": {
                "total_params": self.total_params,
                "trainable_params": self.trainable_params,
                "non_trainable_params": self.non_trainable_params,
                "total_mult_adds": self.total_mult_adds,
                "input_mb": self.input_mb,
                "forward_backward_mb": self.forward_backward_mb,
                "params_mb": self.params_mb,
                "total_mb": self.total_mb,
            },
            "diagram": [item_to_json(item) for item in self.diagram],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Summary:
        """The summary `to_json` wrote (e.g. a bundle manifest's), without the model: the text,
        JSON and Mermaid renderings are the same as the original's."""
        totals = data["totals"]
        return cls(
            rows=[SummaryRow.from_json(row) for row in data["rows"]],
            input_sizes=tuple(tuple(size) for size in data["input_size"]),
            batch_size=data["batch_size"],
            total_params=totals["total_params"],
            trainable_params=totals["trainable_params"],
            diagram=[item_from_json(item) for item in data["diagram"]],
        )

    def to_mermaid(self, detail: Literal["auto", "full", "compact"] = "auto") -> str:
        """A `flowchart TB` of the block structure with `+` merges for residual blocks.

        "full" draws each direct child of a residual branch, "compact" one node per branch;
        "auto" falls back to "compact" when "full" exceeds mermaid.js's default limits.
        """
        return render_mermaid(self.diagram, detail)


def _display_name(name: str) -> str:
    """Names longer than the column are shortened as head...tail, like the MDNC torchsummary."""
    return name if len(name) <= NAME_WIDTH else f"{name[:8]}...{name[-9:]}"


def _row_lines(row: SummaryRow) -> list[str]:
    """One line per row; a call with several outputs lists the further shapes below it."""
    shapes = [str(list(shape)) for shape in row.output_shapes] or ["[]"]
    first = ROW_FORMAT.format(_display_name(row.name), shapes[0], f"{row.params:,}")
    return [first] + [ROW_FORMAT.format("", shape, "") for shape in shapes[1:]]
