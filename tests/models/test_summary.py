"""models.summary: the torchsummary table (byte-exact against the MDNC seed), JSON, Mermaid."""

from __future__ import annotations

import itertools
import json
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from models.blocks import BLOCK_TYPES, BlockBottleneck1d
from models.registry import create_model
from models.summary import Summary, summarize

SEEDS = Path(__file__).resolve().parents[1] / "fixtures" / "seeds"
SHARED_SEED = (
    Path(__file__).resolve().parents[3] / "shared" / "seeds" / "mdnc-BlockBottleneck1d.txt"
)
MB = 1024**2

SEED_EXAMPLES = {
    "example1": (
        lambda: BlockBottleneck1d(16, 32, kernel_size=3, stride=2, padding=1),
        (16, 255),
    ),
    "example2": (
        lambda: BlockBottleneck1d(
            32, 16, kernel_size=3, stride=2, padding=1, output_size=255, scaler="up"
        ),
        (32, 128),
    ),
}


def collapse_spaces(text: str) -> str:
    """What the seed's page scraper did: runs of spaces to one, leading spaces stripped."""
    return "\n".join(re.sub(" +", " ", line).lstrip(" ") for line in text.split("\n"))


# ---------------------------------------------------------------- test doubles


class Residual(nn.Module):
    """Minimal residual block following the `shortcut` contract of docs/architecture.md."""

    def __init__(self, chs: int, out_chs: int | None = None, *, residual: bool = True) -> None:
        super().__init__()
        out_chs = out_chs or chs
        self.conv1 = nn.Conv1d(chs, chs, 3, padding=1)
        self.act = nn.ReLU()
        self.conv2 = nn.Conv1d(chs, out_chs, 1)
        if not residual:
            self.shortcut = None
        elif out_chs == chs:
            self.shortcut = nn.Identity()
        else:
            self.shortcut = nn.Conv1d(chs, out_chs, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, C, L)
        y = self.conv2(self.act(self.conv1(x)))
        return y if self.shortcut is None else y + self.shortcut(x)


def tiny_network(blocks: int) -> nn.Sequential:
    """stem -> one stage of `blocks` residual blocks (first one projects) -> head."""
    stage = [Residual(2, 4)] + [Residual(4) for _ in range(blocks - 1)]
    return nn.Sequential(
        nn.Conv1d(1, 2, 3, padding=1),
        nn.Sequential(*stage),
        nn.Sequential(nn.AdaptiveAvgPool1d(1), nn.Flatten(), nn.Linear(4, 3)),
    )


def hooks_left(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


# ---------------------------------------------------------------- the seed tables


@pytest.mark.parametrize("example", sorted(SEED_EXAMPLES))
def test_seed_table_is_reproduced_byte_for_byte(example: str) -> None:
    build, input_size = SEED_EXAMPLES[example]
    seed = (SEEDS / f"mdnc-BlockBottleneck1d-{example}.txt").read_bytes()

    text = summarize(build(), input_size).to_text()

    assert (collapse_spaces(text) + "\n").encode() == seed


@pytest.mark.parametrize("example", sorted(SEED_EXAMPLES))
def test_fixture_is_a_verbatim_copy_of_the_shared_seed(example: str) -> None:
    if not SHARED_SEED.exists():
        pytest.skip(f"{SHARED_SEED} is not checked out beside the repository")
    table = (SEEDS / f"mdnc-BlockBottleneck1d-{example}.txt").read_bytes()

    assert table.endswith(b"\n")
    assert table.rstrip(b"\n") in SHARED_SEED.read_bytes()


def test_text_keeps_torchsummary_column_layout() -> None:
    build, input_size = SEED_EXAMPLES["example1"]
    lines = summarize(build(), input_size).to_text().split("\n")

    assert lines[0] == "-" * 64
    assert lines[1] == "        Layer (type)               Output Shape         Param #"
    assert lines[2] == "=" * 64
    assert lines[3] == "    InstanceNorm1d-1              [-1, 16, 255]              32"
    assert lines[8] == "            Conv1d-6              [-1, 16, 128]             768"
    assert lines[14] == "BlockBottleneck1d-12              [-1, 32, 128]               0"
    assert lines[-1] == "-" * 64
    assert not lines[-1].endswith("\n")


def test_mb_lines_follow_torchsummary_formulas() -> None:
    build, input_size = SEED_EXAMPLES["example1"]
    summary = summarize(build(), input_size)
    # Output elements per sample of the 12 rows: 5 x 16*255, 3 x 16*128, 4 x 32*128.
    outputs = 5 * 16 * 255 + 3 * 16 * 128 + 4 * 32 * 128

    assert summary.input_mb == pytest.approx(16 * 255 * 4 / MB)
    assert summary.forward_backward_mb == pytest.approx(2 * outputs * 4 / MB)
    assert summary.params_mb == pytest.approx(2256 * 4 / MB)
    assert summary.total_mb == pytest.approx((16 * 255 + 2 * outputs + 2256) * 4 / MB)


def test_batch_size_is_shown_and_scales_the_sizes() -> None:
    build, input_size = SEED_EXAMPLES["example1"]
    default = summarize(build(), input_size)
    batched = summarize(build(), input_size, batch_size=4)

    assert batched.rows[-1].output_shape == [4, 32, 128]
    assert "[4, 32, 128]" in batched.to_text()
    assert batched.input_mb == pytest.approx(4 * default.input_mb)
    assert batched.forward_backward_mb == pytest.approx(4 * default.forward_backward_mb)
    assert batched.params_mb == default.params_mb


# ---------------------------------------------------------------- rows and totals


def test_rows_are_leaf_calls_then_root_in_completion_order() -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sequential(nn.BatchNorm2d(4), nn.ReLU()))
    summary = summarize(model, (3, 8, 8))

    assert [row.name for row in summary.rows] == [
        "Conv2d-1",
        "BatchNorm2d-2",
        "ReLU-3",
        "Sequential-4",
    ]
    assert [row.path for row in summary.rows] == ["0", "1.0", "1.1", ""]
    assert summary.rows[0].output_shape == [-1, 4, 6, 6]
    assert summary.rows[0].params == 3 * 4 * 9 + 4
    assert summary.total_params == sum(p.numel() for p in model.parameters())


def test_every_call_of_a_reused_module_gets_a_row() -> None:
    class TwiceReLU(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(4, 4)
            self.act = nn.ReLU()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.act(self.fc(self.act(x)))

    summary = summarize(TwiceReLU(), (4,))

    assert [row.name for row in summary.rows] == ["ReLU-1", "Linear-2", "ReLU-3", "TwiceReLU-4"]


def test_tied_parameters_are_counted_once() -> None:
    class TiedLinear(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.encode = nn.Linear(8, 8, bias=False)
            self.decode = nn.Linear(8, 8, bias=False)
            self.decode.weight = self.encode.weight

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.decode(self.encode(x))

    summary = summarize(TiedLinear(), (8,))

    assert [row.params for row in summary.rows] == [64, 64, 0]
    assert summary.total_params == 64
    assert summary.trainable_params == 64
    assert "Total params: 64" in summary.to_text()


def test_frozen_parameters_are_non_trainable() -> None:
    model = nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))
    model[0].weight.requires_grad_(False)
    summary = summarize(model, (4,))

    assert summary.rows[0].trainable == 3
    assert (summary.total_params, summary.trainable_params) == (23, 11)
    assert summary.non_trainable_params == 12
    assert "Non-trainable params: 12" in summary.to_text()


def test_container_owning_parameters_gets_a_row_so_totals_add_up() -> None:
    class LayerScaled(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(2, 2, 1)
            self.gamma = nn.Parameter(torch.ones(2, 1))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.gamma * self.conv(x)

    model = nn.Sequential(LayerScaled(), nn.ReLU())
    summary = summarize(model, (2, 5))

    assert [row.name for row in summary.rows] == [
        "Conv1d-1",
        "LayerScaled-2",
        "ReLU-3",
        "Sequential-4",
    ]
    assert summary.total_params == sum(row.params for row in summary.rows) == 8


@pytest.mark.parametrize(
    ("layer", "input_size", "expected"),
    [
        (nn.Conv1d(4, 8, 3, padding=1, bias=False), (4, 10), 8 * 10 * 4 * 3),
        (nn.Conv2d(4, 8, 3, stride=2, groups=2), (4, 9, 9), 8 * 4 * 4 * 2 * 9),
        (nn.Conv3d(2, 3, (1, 2, 3)), (2, 4, 4, 4), 3 * 4 * 3 * 2 * 2 * 6),
        (nn.ConvTranspose1d(4, 6, 3, stride=2), (4, 5), 4 * 5 * 6 * 3),
        (nn.Linear(5, 7), (5,), 7 * 5),
        (nn.Linear(5, 7), (3, 5), 3 * 7 * 5),
        (nn.BatchNorm2d(4), (4, 3, 3), 0),
        (nn.PReLU(4), (4, 6), 0),
        (nn.MaxPool2d(2), (4, 6, 6), 0),
    ],
)
def test_mult_adds_per_sample(layer: nn.Module, input_size: tuple, expected: int) -> None:
    summary = summarize(layer, input_size, batch_size=16)

    assert summary.rows[0].mult_adds == expected
    assert summary.total_mult_adds == expected
    assert summary.to_json()["totals"]["total_mult_adds"] == expected


def test_mult_adds_of_the_seed_example() -> None:
    build, input_size = SEED_EXAMPLES["example1"]
    summary = summarize(build(), input_size)
    convs = [row.mult_adds for row in summary.rows if row.type == "Conv1d"]

    assert convs == [16 * 255 * 16, 16 * 128 * 16 * 3, 32 * 128 * 16, 32 * 128 * 16]
    assert summary.total_mult_adds == sum(convs) == 294_656
    assert "mult-adds" not in summary.to_text().lower()


def test_text_extras_add_mult_adds_below_the_unchanged_table() -> None:
    build, input_size = SEED_EXAMPLES["example1"]
    summary = summarize(build(), input_size)

    assert summary.to_text(extras=True) == summary.to_text() + "\nTotal mult-adds: 294,656"


def test_conv_called_with_keyword_input_still_counts_mult_adds() -> None:
    class KeywordCall(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(2, 3, 3)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(input=x)

    assert summarize(KeywordCall(), (2, 7)).total_mult_adds == 3 * 5 * 2 * 3


@pytest.mark.parametrize(
    ("layer", "input_size", "kernel"),
    [
        (nn.Conv1d(1, 1, 5), (1, 9), (5,)),
        (nn.Conv2d(1, 1, (3, 1)), (1, 6, 6), (3, 1)),
        (nn.MaxPool3d(2), (1, 4, 4, 4), (2, 2, 2)),
        (nn.AvgPool2d(3), (1, 6, 6), (3, 3)),
        (nn.Linear(2, 2), (2,), None),
        (nn.ReLU(), (2, 3), None),
    ],
)
def test_kernel_size_for_convolutions_and_pools_only(
    layer: nn.Module, input_size: tuple, kernel: tuple | None
) -> None:
    assert summarize(layer, input_size).rows[0].kernel_size == kernel


@pytest.mark.parametrize(("dims", "input_size"), [(1, (2, 16)), (2, (2, 8, 8)), (3, (2, 4, 4, 4))])
def test_works_for_1d_2d_and_3d(dims: int, input_size: tuple) -> None:
    conv = (nn.Conv1d, nn.Conv2d, nn.Conv3d)[dims - 1]
    norm = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)[dims - 1]
    model = nn.Sequential(conv(2, 4, 3, stride=2, padding=1), norm(4), nn.ReLU())
    summary = summarize(model, input_size)

    spatial = [(size + 1) // 2 for size in input_size[1:]]
    assert summary.rows[-1].output_shape == [-1, 4, *spatial]
    assert summary.rows[0].kernel_size == (3,) * dims


def test_multi_input_model_takes_a_list_of_sizes_and_dtypes() -> None:
    class Pair(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(10, 4)
            self.fc = nn.Linear(3, 4)

        def forward(self, tokens: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
            return self.embed(tokens).sum(1) + self.fc(x)

    summary = summarize(Pair(), [(5,), (3,)], dtypes=[torch.long, torch.float32])

    assert [row.output_shape for row in summary.rows] == [[-1, 5, 4], [-1, 4], [-1, 4]]
    assert summary.input_sizes == ((5,), (3,))
    assert summary.input_mb == pytest.approx((5 + 3) * 4 / MB)


def test_tuple_outputs_list_every_shape() -> None:
    class Split(nn.Module):
        def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            return x[:, :1], x[:, 1:]

    summary = summarize(Split(), (3, 4))
    row = summary.rows[0]

    assert row.output_shapes == ((-1, 1, 4), (-1, 2, 4))
    assert row.output_shape == [-1, 1, 4]
    lines = summary.to_text().split("\n")
    assert lines[3] == " " * 13 + "Split-1" + " " * 17 + "[-1, 1, 4]" + " " * 15 + "0"
    assert lines[4] == " " * 37 + "[-1, 2, 4]" + " " * 16
    assert summary.forward_backward_mb == pytest.approx(2 * 12 * 4 / MB)


def test_names_longer_than_the_column_are_shortened() -> None:
    class AVeryLongResidualBlockName(nn.Linear):
        pass

    text = summarize(AVeryLongResidualBlockName(2, 2), (2,)).to_text()

    assert "AVeryLon...ockName-1" in text.split("\n")[3]


# ---------------------------------------------------------------- model left unchanged


def test_training_flags_and_buffers_are_restored() -> None:
    class CountingBuffer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("calls", torch.zeros(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            self.calls = self.calls.clone()  # replaces the buffer object as well
            return x

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), CountingBuffer(), nn.Dropout())
    model.train()
    model[3].eval()
    with torch.no_grad():
        model[1].running_mean.uniform_()
    flags = [m.training for m in model.modules()]
    buffers = {name: (b, b.clone()) for name, b in model.named_buffers()}

    summarize(model, (3, 6, 6))

    assert [m.training for m in model.modules()] == flags
    for name, buffer in model.named_buffers():
        original, values = buffers[name]
        assert buffer is original, name
        assert torch.equal(buffer, values), name


def test_forward_pass_runs_in_eval_mode_without_grad() -> None:
    seen = []

    class Probe(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            seen.append((self.training, torch.is_grad_enabled(), x.shape[0]))
            return x

    model = Probe().train()
    summarize(model, (2,))

    assert seen == [(False, False, 2)]
    assert model.training


def test_no_hook_is_left_registered() -> None:
    model = tiny_network(blocks=2)
    summarize(model, (1, 8))

    assert hooks_left(model) == 0


def test_no_hook_is_left_when_the_forward_raises() -> None:
    model = nn.Sequential(nn.Linear(4, 4), nn.Linear(5, 2)).train()

    with pytest.raises(RuntimeError, match=r"forward pass of Sequential failed.*\(2, 4\)"):
        summarize(model, (4,))

    assert hooks_left(model) == 0
    assert all(m.training for m in model.modules())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"input_size": ()}, "input_size"),
        ({"input_size": "16"}, "input_size"),
        ({"input_size": (16, 0)}, "positive ints"),
        ({"input_size": [(16, 8), (2, -1)]}, "positive ints"),
        ({"input_size": (4,), "batch_size": 0}, "batch_size"),
        ({"input_size": (4,), "batch_size": -3}, "batch_size"),
        ({"input_size": (4,), "dtypes": [torch.float32, torch.float32]}, "dtypes"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        summarize(nn.Linear(4, 2), **kwargs)


def test_model_must_be_a_module() -> None:
    with pytest.raises(TypeError, match=r"nn\.Module"):
        summarize(lambda x: x, (4,))  # type: ignore[arg-type]


# ---------------------------------------------------------------- JSON


@pytest.mark.parametrize(
    ("name", "input_size"), [("resnet_digits", (1, 8, 8)), ("resnet18", (3, 224, 224))]
)
def test_a_summary_read_back_from_its_json_renders_exactly_like_the_original(
    name, input_size
) -> None:
    original = summarize(create_model(name).eval(), input_size)
    stored = Summary.from_json(json.loads(json.dumps(original.to_json())))

    assert stored == original
    assert stored.to_text(extras=True) == original.to_text(extras=True)
    for detail in ("full", "compact"):
        assert stored.to_mermaid(detail) == original.to_mermaid(detail)


def test_json_is_a_plain_dict_that_round_trips() -> None:
    build, input_size = SEED_EXAMPLES["example2"]
    data = summarize(build(), input_size).to_json()

    assert json.loads(json.dumps(data)) == data
    first = data["rows"][0]
    assert {"name", "type", "output_shape", "params", "trainable", "kernel_size"} <= set(first)
    assert first["name"] == "InstanceNorm1d-1"
    assert first["output_shape"] == [-1, 32, 128]
    assert data["rows"][6]["kernel_size"] == [3]
    assert data["totals"]["total_params"] == 5440
    assert data["totals"]["trainable_params"] == 5440
    assert data["totals"]["non_trainable_params"] == 0
    assert data["totals"]["total_mult_adds"] == sum(row["mult_adds"] for row in data["rows"])
    assert round(data["totals"]["total_mb"], 2) == 0.63


# ---------------------------------------------------------------- Mermaid


NODE = re.compile(r"^(?P<id>[A-Za-z_]\w*)(?P<shape>.*)$")
RESERVED = {"end", "graph", "flowchart", "subgraph", "style", "class", "classDef", "click"}


def parse_mermaid(text: str) -> tuple[dict[str, str], list[tuple[str, str]], list[str]]:
    """Check the flowchart is structurally valid; return node shapes, edges, subgraph ids."""
    lines = text.split("\n")
    assert lines[0] == "flowchart TB"
    assert lines[-1] == "classDef diagramop fill:#FFB11B, stroke:#AF811B;"
    shapes: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    subgraphs: list[str] = []
    depth = 0

    def define(part: str) -> str:
        match = NODE.match(part)
        assert match, part
        node, shape = match["id"], match["shape"]
        assert node not in RESERVED, node
        if shape:
            assert node not in shapes, f"{node} defined twice"
            assert re.fullmatch(r'\["[^"]*"\]|\(\("[^"]*"\)\)(:::diagramop)?', shape), shape
            shapes[node] = shape
        return node

    for line in (raw.strip() for raw in lines[1:-1]):
        if line.startswith("subgraph "):
            match = re.fullmatch(r'subgraph (\w+)\["[^"]*"\]', line)
            assert match, line
            subgraphs.append(match[1])
            depth += 1
        elif line == "end":
            depth -= 1
            assert depth >= 0
        else:
            nodes = [define(part) for part in line.split(" --> ")]
            edges += list(itertools.pairwise(nodes))
    assert depth == 0
    assert not set(subgraphs) & set(shapes), "subgraph ids collide with node ids"
    assert len(set(subgraphs)) == len(subgraphs)
    for a, b in edges:
        assert a in shapes and b in shapes, (a, b)
    return shapes, edges, subgraphs


def plus_nodes(shapes: dict[str, str]) -> list[str]:
    return [node for node, shape in shapes.items() if shape == '(("+")):::diagramop']


def test_mermaid_of_a_projection_block_matches_the_seed_diagram() -> None:
    build, input_size = SEED_EXAMPLES["example1"]
    lines = summarize(build(), input_size).to_mermaid().split("\n")

    chain = [re.sub(r"\[.*?\]", "[]", part) for part in lines[1].split(" --> ")]
    assert chain == [
        'in((" "))',
        "conv1[]",
        "conv2[]",
        "conv3[]",
        'plus(("+")):::diagramop',
        'out((" "))',
    ]
    assert re.fullmatch(r'in --> pconv\["Projection<br>[^"]+"\] --> plus', lines[2])
    assert len(lines) == 4
    parse_mermaid("\n".join(lines))


def test_mermaid_of_an_identity_block_has_a_direct_skip_edge() -> None:
    summary = summarize(BlockBottleneck1d(8, 8), (8, 16))
    text = summary.to_mermaid()

    assert "in --> plus" in text.split("\n")
    assert "pconv" not in text
    shapes, _, _ = parse_mermaid(text)
    assert len(plus_nodes(shapes)) == 1


def test_mermaid_of_a_network_draws_each_block_as_a_subgraph() -> None:
    summary = summarize(tiny_network(blocks=3), (1, 8))
    shapes, edges, subgraphs = parse_mermaid(summary.to_mermaid())

    assert subgraphs == ["sg_1_0", "sg_1_1", "sg_1_2"]
    assert len(plus_nodes(shapes)) == 3
    assert ("n_0", "n_1_0_conv1") in edges  # stem feeds the first block's branch ...
    assert ("n_0", "n_1_0_pconv") in edges  # ... and its projection
    assert ("n_1_0_plus", "n_1_1_plus") in edges  # identity skip of the second block
    assert ("n_1_2_plus", "n_2") in edges  # last block feeds the head
    assert ("n_2", "out") in edges


def test_mermaid_of_a_very_deep_network_stays_valid_and_within_mermaid_limits() -> None:
    summary = summarize(tiny_network(blocks=110), (1, 4))

    full = summary.to_mermaid("full")
    shapes, _, subgraphs = parse_mermaid(full)
    assert len(subgraphs) == 110
    assert len(plus_nodes(shapes)) == 110
    assert len(shapes) == 2 + 1 + 110 * 4 + 1 + 1  # in/out, stem, blocks, projection, head
    assert full.count(" --> ") > 500

    auto = summary.to_mermaid()
    shapes, edges, subgraphs = parse_mermaid(auto)
    assert len(subgraphs) == 110
    assert len(plus_nodes(shapes)) == 110
    assert len(edges) <= 500
    assert len(auto) <= 50_000
    assert auto == summary.to_mermaid("compact")


def test_compact_mermaid_draws_each_branch_as_one_node() -> None:
    summary = summarize(tiny_network(blocks=2), (1, 8))
    shapes, edges, _ = parse_mermaid(summary.to_mermaid("compact"))

    assert shapes["n_1_0_branch"] == '["branch<br>Conv1d k3 → ReLU → Conv1d k1"]'
    assert ("n_0", "n_1_0_branch") in edges
    assert ("n_1_0_branch", "n_1_0_plus") in edges
    assert summary.to_mermaid() == summary.to_mermaid("full")


def test_mermaid_detail_must_be_known() -> None:
    with pytest.raises(ValueError, match="detail"):
        summarize(nn.ReLU(), (2,)).to_mermaid("tiny")  # type: ignore[arg-type]


def test_mermaid_draws_post_act_after_the_merge() -> None:
    block = BLOCK_TYPES["basic"](4, 4, dims=1)
    shapes, edges, _ = parse_mermaid(summarize(block, (4, 8)).to_mermaid())

    assert len(plus_nodes(shapes)) == 1
    assert ("bn2", "plus") in edges
    assert ("plus", "post_act") in edges
    assert ("post_act", "out") in edges
    assert ("in", "plus") in edges


def test_mermaid_block_without_residual_has_no_merge() -> None:
    model = nn.Sequential(Residual(2, 3, residual=False), Residual(3))
    shapes, edges, subgraphs = parse_mermaid(summarize(model, (2, 6)).to_mermaid())

    assert len(subgraphs) == 2
    assert plus_nodes(shapes) == ["n_1_plus"]
    assert ("n_0_conv2", "n_1_conv1") in edges


def test_mermaid_nests_a_block_inside_a_block_branch() -> None:
    class Outer(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.inner = Residual(2)
            self.conv = nn.Conv1d(2, 2, 1)
            self.shortcut = nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(self.inner(x)) + self.shortcut(x)

    text = summarize(nn.Sequential(Outer()), (2, 6)).to_mermaid()
    shapes, edges, subgraphs = parse_mermaid(text)

    assert subgraphs == ["sg_0", "sg_0_inner"]
    assert '\n    subgraph sg_0_inner["inner<br>Residual"]\n' in text  # nested in sg_0
    assert len(plus_nodes(shapes)) == 2
    assert ("in", "n_0_inner_plus") in edges  # inner identity skip
    assert ("n_0_inner_plus", "n_0_conv") in edges
    assert ("in", "n_0_plus") in edges  # outer identity skip


def test_mermaid_escapes_labels() -> None:
    odd_name = 'a"b<c>#'

    class OddNames(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.add_module(odd_name, nn.Linear(2, 2))
            self.shortcut = nn.Identity()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return getattr(self, odd_name)(x) + self.shortcut(x)

    text = summarize(OddNames(), (2,)).to_mermaid()

    shapes, _, _ = parse_mermaid(text)
    assert "a#quot;b#lt;c#gt;#35;<br>Linear" in "".join(shapes.values())


def test_mermaid_node_ids_avoid_keywords_and_terminals() -> None:
    model = nn.Sequential(
        OrderedDict([("end", nn.Conv1d(2, 2, 1)), ("plus", Residual(2)), ("out", nn.ReLU())])
    )
    shapes, edges, _ = parse_mermaid(summarize(model, (2, 5)).to_mermaid())

    assert "n_end" in shapes
    assert shapes["out"] == '["out<br>ReLU"]'
    assert ("out", "out_2") in edges
    assert len(plus_nodes(shapes)) == 1


def test_input_size_accepts_torch_size_and_numpy_like_ints() -> None:
    assert summarize(nn.Conv1d(2, 2, 1), torch.Size([2, 5])).input_sizes == ((2, 5),)
    assert summarize(nn.Conv1d(2, 2, 1), (np.int64(2), np.int64(5))).input_sizes == ((2, 5),)


def test_summary_type_is_exported() -> None:
    assert isinstance(summarize(nn.ReLU(), (2,)), Summary)
