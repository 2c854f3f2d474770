import pytest

from mouthpiece.params import BOUNDS, GenerationParams
from mouthpiece.types import InputError


def test_defaults_are_valid_and_seed_is_drawn():
    params, warnings = GenerationParams().validated()
    assert warnings == []
    assert isinstance(params.seed, int) and params.seed >= 0


def test_seed_zero_is_a_seed():
    params, _ = GenerationParams(seed=0).validated()
    assert params.seed == 0


@pytest.mark.parametrize("name", sorted(BOUNDS))
def test_hard_bounds_name_the_parameter(name):
    lo, hi, *_ = BOUNDS[name]
    for bad in (lo - 1, hi + 1):
        with pytest.raises(InputError, match=name):
            GenerationParams(**{name: bad}).validated()


@pytest.mark.parametrize("name,value", [("dynamic_scale", 1.6), ("motion_scale", 0.3),
                                        ("inference_steps", 5), ("fps", 30), ("expand_ratio", 0.9),
                                        ("min_resolution", 256)])
def test_outside_recommended_range_warns(name, value):
    _, warnings = GenerationParams(**{name: value}).validated()
    assert len(warnings) == 1 and name in warnings[0]


def test_min_resolution_multiple_of_64():
    with pytest.raises(InputError, match="multiple of 64"):
        GenerationParams(min_resolution=500).validated()


def test_fractional_fps_refused():
    with pytest.raises(InputError, match="fps"):
        GenerationParams(fps=24.5).validated()


def test_duration_rules():
    p = GenerationParams()
    assert p.resolve_duration(3.2) == 3.2
    assert GenerationParams(duration=3.25).resolve_duration(3.2) == 3.25  # within 0.1 s
    with pytest.raises(InputError, match="--pad"):
        GenerationParams(duration=5).resolve_duration(3.2)
    with pytest.raises(InputError, match="--trim"):
        GenerationParams(duration=2).resolve_duration(3.2)
    assert GenerationParams(duration=5, pad=True).resolve_duration(3.2) == 5
    assert GenerationParams(duration=2, trim=True).resolve_duration(3.2) == 2
    with pytest.raises(InputError, match="--trim"):
        GenerationParams(duration=2, pad=True).resolve_duration(3.2)
    with pytest.raises(InputError, match="duration"):
        GenerationParams(duration=0).validated()
    with pytest.raises(InputError, match="exclude"):
        GenerationParams(pad=True, trim=True).validated()
