"""NetworkSpec: exact dict / JSON / YAML round-trips, field-naming validation, overrides and
the stochastic-depth schedule."""

from __future__ import annotations

import itertools

import pytest

from models import NetworkSpec, list_models, model_spec
from models.spec import HeadSpec, SpecError, StageSpec, StemSpec


def small_spec(**fields) -> NetworkSpec:
    stages = [StageSpec("basic", 8, 2, 1), StageSpec("basic", 16, 3, 2)]
    return NetworkSpec(stages=stages, stem=StemSpec("conv", 8), **fields)


@pytest.mark.parametrize("name", list_models())
def test_every_zoo_spec_round_trips_exactly_through_dict_json_and_yaml(name):
    spec = model_spec(name)
    assert NetworkSpec.from_dict(spec.to_dict()) == spec
    assert NetworkSpec.from_json(spec.to_json()) == spec
    assert NetworkSpec.from_yaml(spec.to_yaml()) == spec


def test_tuples_in_kwargs_become_lists_so_round_trips_stay_exact():
    spec = NetworkSpec(stages=[StageSpec("basic", 8, 1, kwargs={"sizes": (1, 2)})])
    assert spec.stages[0].kwargs == {"sizes": [1, 2]}
    assert NetworkSpec.from_json(spec.to_json()) == spec


def test_defaults_are_filled_in_from_a_minimal_dict():
    spec = NetworkSpec.from_dict({"stages": [{"block": "basic", "width": 8, "depth": 1}]})
    assert spec.dims == 2 and spec.in_chans == 3 and spec.stages[0].stride == 1
    assert spec.head == HeadSpec() and spec.stem == StemSpec()


STAGE = {"block": "basic", "width": 8, "depth": 1}


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        ({"stages": [{**STAGE, "depth": 0}]}, r"^stages\[0\]\.depth: must be >= 1"),
        ({"stages": [STAGE, {**STAGE, "widht": 8}]}, r"^stages\[1\]\.widht: unknown field"),
        ({"stages": [{"block": "basic", "depth": 1}]}, r"^stages\[0\]\.width: is required"),
        ({"stages": []}, r"^stages: must be a non-empty list"),
        ({"stages": [{**STAGE, "block": ""}]}, r"^stages\[0\]\.block"),
        ({"stages": [{**STAGE, "stride": 1.5}]}, r"^stages\[0\]\.stride: must be an int"),
        ({"stages": [{**STAGE, "kwargs": []}]}, r"^stages\[0\]\.kwargs: must be a dict"),
        ({"dims": 4}, r"^dims: must be one of \[1, 2, 3\]"),
        ({"dims": True}, r"^dims: must be an int"),
        ({"in_chans": True}, r"^in_chans: must be an int"),
        ({"stem": {"width": -1}}, r"^stem\.width: must be >= 1"),
        ({"stem": {"kinds": "x"}}, r"^stem\.kinds: unknown field"),
        ({"head": {"dropout": 1.5}}, r"^head\.dropout: must be in \[0, 1\)"),
        ({"head": {"pool": "sum"}}, r"^head\.pool: must be one of"),
        ({"head": {"num_classes": 0}}, r"^head\.num_classes: must be >= 1"),
        ({"drop_path_rate": 1.0}, r"^drop_path_rate: must be a float in \[0, 1\)"),
        ({"drop_path_schedule": "cos"}, r"^drop_path_schedule: must be one of"),
    ],
)
def test_invalid_values_raise_an_error_naming_the_field(patch, path):
    with pytest.raises(SpecError, match=path):
        NetworkSpec.from_dict({"stages": [STAGE], **patch})


def test_stages_are_required():
    with pytest.raises(SpecError, match=r"^stages: is required"):
        NetworkSpec.from_dict({"dims": 2})


def test_conv_pre_pool_needs_a_width_and_other_pre_pools_refuse_one():
    with pytest.raises(SpecError, match=r"head\.pre_pool_width: is required"):
        HeadSpec(pre_pool="conv_norm_act").validate()
    with pytest.raises(SpecError, match=r"head\.pre_pool_width: must be None"):
        HeadSpec(pre_pool="norm_act", pre_pool_width=64).validate()


def test_kwargs_must_be_json_data():
    with pytest.raises(SpecError, match=r"stages\[0\]\.kwargs\.norm_layer: must be JSON data"):
        NetworkSpec(stages=[StageSpec("basic", 8, 1, kwargs={"norm_layer": object()})])


def test_linspace_schedule_reaches_the_full_rate_at_the_last_block():
    rates = small_spec(drop_path_rate=0.2, drop_path_schedule="linspace").drop_path_rates()
    assert [len(stage) for stage in rates] == [2, 3]
    assert list(itertools.chain(*rates)) == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])


def test_index_over_total_schedule_stops_one_step_short_of_the_rate():
    spec = small_spec(drop_path_rate=0.2, drop_path_schedule="index_over_total")
    assert list(itertools.chain(*spec.drop_path_rates())) == pytest.approx(
        [0.0, 0.04, 0.08, 0.12, 0.16]
    )


def test_overrides_replace_top_level_fields_and_num_classes():
    spec = small_spec().with_overrides(num_classes=7, in_chans=1, dims=1, drop_path_rate=0.1)
    assert (spec.num_classes, spec.in_chans, spec.dims, spec.drop_path_rate) == (7, 1, 1, 0.1)


def test_a_dict_override_updates_only_the_named_head_fields():
    spec = small_spec().with_overrides(head={"dropout": 0.3})
    assert spec.head == HeadSpec(dropout=0.3)


def test_dotted_overrides_reach_nested_fields():
    spec = small_spec().with_overrides(**{"stages.1.depth": 5, "stages.0.kwargs.kernel_size": 5})
    assert spec.stages[1].depth == 5
    assert spec.stages[0].kwargs == {"kernel_size": 5}


def test_overrides_leave_the_original_spec_unchanged():
    spec = small_spec()
    spec.with_overrides(num_classes=3, **{"stages.0.depth": 4})
    assert spec == small_spec()


def test_unknown_override_keys_raise_type_error_listing_valid_keys():
    with pytest.raises(TypeError, match=r"unknown override 'num_class'.*num_classes"):
        small_spec().with_overrides(num_class=3)
    with pytest.raises(TypeError, match=r"'stages\.7' is not an index below 2"):
        small_spec().with_overrides(**{"stages.7.depth": 1})
    with pytest.raises(SpecError, match=r"head\.drop: unknown field"):
        small_spec().with_overrides(head={"drop": 0.1})


def test_override_values_are_validated():
    with pytest.raises(SpecError, match=r"head\.num_classes"):
        small_spec().with_overrides(num_classes=-1)
