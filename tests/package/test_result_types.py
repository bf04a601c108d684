"""Every public dataclass compares with ``==`` without raising and survives copy, deepcopy, pickle.

The types are discovered from the public ``__all__`` lists, so a new result type is covered
without editing this file; an instance is synthesised from the field annotations (bypassing
``__init__``: the mechanics of equality and copying do not depend on the values being a valid
solve). ``GlobalMin`` is also checked on a real solve, with its reference to X and its cached
values.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import pickle
import types
import typing
from pathlib import Path

import numpy as np
import pytest
from _public_api import public_objects

import structdrop as sd
from structdrop._results import ResultEquality


def _public_dataclasses() -> dict[str, type]:
    return {
        name: obj
        for name, obj in public_objects().items()
        if isinstance(obj, type) and dataclasses.is_dataclass(obj)
    }


TYPES = _public_dataclasses()


def _is_tensor(value: object) -> bool:
    return type(value).__module__.startswith("torch")


def _tensor(values: np.ndarray):
    import torch

    return torch.from_numpy(values)


def _synthesise(hint: object, k: int) -> object:
    """A value of type ``hint``; different ``k`` give different values."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return _synthesise(next(a for a in args if a is not type(None)), k)
    if hint is np.ndarray:
        return np.arange(6.0).reshape(2, 3) + k
    if getattr(hint, "__module__", "").startswith("torch") and getattr(hint, "__name__", "") in (
        "Tensor",
    ):
        return _tensor(np.arange(6.0).reshape(2, 3) + k)
    if hint is bool:
        return k % 2 == 0
    if hint is int:
        return 2 + k
    if hint is float:
        return 1.5 + k
    if hint is str:
        return f"s{k}"
    if hint is Path:
        return Path(f"p{k}")
    if origin is tuple:
        if len(args) == 2 and args[1] is Ellipsis:
            return (_synthesise(args[0], k), _synthesise(args[0], k + 1))
        return tuple(_synthesise(a, k + i) for i, a in enumerate(args))
    if origin is dict:
        return {"first": _synthesise(args[1], k), "second": _synthesise(args[1], k + 1)}
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _instance(hint, k)
    raise NotImplementedError(f"teach _synthesise the annotation {hint!r}")


def _hints(cls: type) -> dict[str, object]:
    module = importlib.import_module(cls.__module__)
    return typing.get_type_hints(cls, vars(module))


def _build(cls: type, values: dict[str, object]) -> object:
    obj = object.__new__(cls)
    for name, value in values.items():
        object.__setattr__(obj, name, value)
    return obj


def _values(cls: type, k: int = 0) -> dict[str, object]:
    hints = _hints(cls)
    return {
        f.name: (_synthesise(hints[f.name], k) if f.compare else None)
        for f in dataclasses.fields(cls)
    }


def _instance(cls: type, k: int = 0) -> object:
    return _build(cls, _values(cls, k))


def _round_trips(obj: object) -> dict[str, object]:
    return {
        "copy": copy.copy(obj),
        "deepcopy": copy.deepcopy(obj),
        "pickle": pickle.loads(pickle.dumps(obj)),
    }


def _contains_array(value: object) -> bool:
    if isinstance(value, (tuple, list)):
        return any(_contains_array(v) for v in value)
    if isinstance(value, dict):
        return any(_contains_array(v) for v in value.values())
    if dataclasses.is_dataclass(value):
        return any(_contains_array(getattr(value, f.name)) for f in dataclasses.fields(value))
    return not isinstance(value, (bool, int, float, str, Path, type(None)))


def _holds_arrays(cls: type) -> bool:
    return _contains_array(_values(cls))


def test_discovery_finds_the_result_types():
    """The discovery sees the result types (so the tests below are not vacuous)."""
    names = {cls.__name__ for cls in TYPES.values()}
    expected = {
        "GlobalMin",
        "SweepResult",
        "WidthSweepResult",
        "WidthGap",
        "BalancedFactorization",
        "ProxResult",
        "ProxBatchResult",
        "DataMoments",
        "SyntheticProblem",
        "TrainResult",
        "ObjectiveTerms",
    }
    assert expected <= names
    try:
        import torch  # noqa: F401
    except ImportError:
        return
    expected_torch = {"BatchedTrainResult", "DeepExperimentResult", "MaskMoments", "MaskStatistics"}
    assert expected_torch <= names


@pytest.mark.parametrize("name", sorted(TYPES))
def test_equal_to_itself_and_to_its_copies(name):
    obj = _instance(TYPES[name])
    assert obj == obj and not (obj != obj)
    assert obj == _instance(TYPES[name])  # equal values, other array objects
    for how, other in _round_trips(obj).items():
        assert type(other) is type(obj), how
        assert other == obj and obj == other and not (other != obj), how
    assert (obj == object()) is False and obj != "text" and obj is not None


@pytest.mark.parametrize("name", sorted(TYPES))
def test_every_compared_field_counts(name):
    """Changing any one field (an array's values, dtype or shape) makes the results unequal."""
    cls = TYPES[name]
    base = _values(cls)
    other = _values(cls, k=1)
    for f in dataclasses.fields(cls):
        if not f.compare:
            continue
        variants = [other[f.name]]
        value = base[f.name]
        if isinstance(value, np.ndarray):
            variants += [value.astype(np.float32), value.reshape(3, 2), value.ravel()]
            changed = value.copy()
            changed[-1, -1] = np.nextafter(changed[-1, -1], np.inf)
            variants.append(changed)
        for variant in variants:
            changed_obj = _build(cls, {**base, f.name: variant})
            assert changed_obj != _build(cls, base), f"{name}.{f.name} = {variant!r}"
            assert not (_build(cls, base) == changed_obj), f"{name}.{f.name}"


@pytest.mark.parametrize("name", sorted(TYPES))
def test_hash_is_consistent_or_refused(name):
    """A type holding arrays is unhashable (a clear TypeError); any other hashes its value."""
    cls = TYPES[name]
    obj = _instance(cls)
    if _holds_arrays(cls):
        assert issubclass(cls, ResultEquality), f"{name} holds arrays: derive ResultEquality"
        with pytest.raises(TypeError, match="unhashable"):
            hash(obj)
        assert cls.__hash__ is None
    else:
        for how, other in _round_trips(obj).items():
            assert hash(other) == hash(obj), how


@pytest.mark.parametrize(
    "name", sorted(n for n, cls in TYPES.items() if issubclass(cls, ResultEquality))
)
def test_nan_equals_nan_in_the_same_place(name):
    """The stated NaN rule: a copy of a result holding NaN still equals it; NaN elsewhere does
    not."""
    cls = TYPES[name]
    base = _values(cls)
    array_fields = [
        key for key, value in base.items() if isinstance(value, np.ndarray) or _is_tensor(value)
    ]
    float_fields = [key for key, value in base.items() if isinstance(value, float)]
    if not array_fields and not float_fields:
        pytest.skip(f"{name} has no float field")  # pragma: no cover - none today
    nan = dict(base)
    for key in array_fields:
        nan[key] = copy.deepcopy(base[key])
        nan[key][0, 0] = np.nan
    for key in float_fields:
        nan[key] = float("nan")
    obj = _build(cls, nan)
    for how, other in _round_trips(obj).items():
        assert other == obj, how
    for key in array_fields:
        moved = copy.deepcopy(base[key])
        moved[0, 1] = np.nan
        assert _build(cls, {**nan, key: moved}) != obj


def test_values_equal_rules():
    """The comparison itself: exact, shape and dtype included, never raising."""
    from structdrop._results import values_equal

    a = np.array([[1.0, 2.0]])
    assert values_equal(a, a.copy())
    assert not values_equal(a, a.astype(np.float32))
    assert not values_equal(a, a.ravel())
    assert not values_equal(a, [[1.0, 2.0]])  # an array never equals a list
    assert values_equal(np.array([0.0]), np.array([-0.0]))  # -0.0 == 0.0, as everywhere
    assert values_equal(np.array(["x", "y"]), np.array(["x", "y"]))
    assert not values_equal((a,), [a])
    assert values_equal({"k": a}, {"k": a.copy()})
    assert not values_equal({"k": a}, {"j": a})
    assert values_equal(1, 1.0) and not values_equal(1.0, 1.0 + 2**-52)
    assert values_equal(float("nan"), np.float64("nan"))
    assert not values_equal(10**400, 10**400 + 1) and not values_equal("a", "b")


def _problem(seed=0, a=4, b=3, N=40):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((b, N)), rng.standard_normal((a, N))


@pytest.mark.parametrize("with_X", [False, True])
def test_global_min_copies_keep_A_and_cached_values(with_X):
    """copy.copy and copy.deepcopy of a real GlobalMin: A works on the copy (it raised once,
    the copy having lost the reference to X), cached values travel, the data is not copied."""
    X, Y = _problem()
    res = sd.dropblock_global_min(Y, block_size=2, theta_bar=0.6, X=X if with_X else None)
    fresh = sd.dropblock_global_min(Y, block_size=2, theta_bar=0.6, X=X if with_X else None)
    expected = res.A
    for make in (copy.copy, copy.deepcopy):
        # copied before A was formed: the copy forms it from the same data
        np.testing.assert_array_equal(make(fresh).A, expected)
        # copied after: the cached A (and coefficients) come along
        res.coefficients  # noqa: B018 - cache it
        other = make(res)
        assert "A" in vars(other) and "coefficients" in vars(other)
        np.testing.assert_array_equal(other.A, expected)
        np.testing.assert_array_equal(other.coefficients, res.coefficients)
        assert other == res == fresh
    shallow, deep = copy.copy(res), copy.deepcopy(res)
    assert shallow.singular_values is res.singular_values
    assert deep.singular_values is not res.singular_values
    assert deep.A is not res.A
    if with_X:
        assert deep._data is X and shallow._data is X  # the caller's X: never copied silently
    deep.singular_values[0] += 1.0  # the deep copy's arrays are its own
    assert deep != res and shallow == res


def test_global_min_pickle_keeps_the_factors_only():
    """The documented pickle rule: equal after the round trip, coefficients and output(X) work,
    A needs X again (neither X nor A* travels)."""
    X, Y = _problem(1)
    res = sd.dropblock_global_min(Y, block_size=2, theta_bar=0.6, X=X)
    res.A  # noqa: B018 - a cached A is not pickled
    back = pickle.loads(pickle.dumps(res))
    assert back == res and "A" not in vars(back) and back._data is None
    np.testing.assert_array_equal(back.output(X), res.A)
    with pytest.raises(AttributeError, match="output"):
        back.A  # noqa: B018
    assert res != sd.dropblock_global_min(Y, block_size=2, theta_bar=0.7, X=X)
    assert res != sd.dropblock_global_min(Y, block_size=3, theta_bar=0.6, X=X)


def test_real_results_compare_without_raising():
    """Results of real calls (not synthesised) compare equal to a repeat and unequal to another
    setting."""
    X, Y = _problem(2)
    sweep = sd.sweep_global_min(Y, block_sizes=[1, 2], theta_bars=[0.5, 0.9], X=X, threads=1)
    assert sweep == sd.sweep_global_min(
        Y, block_sizes=[1, 2], theta_bars=[0.5, 0.9], X=X, threads=1
    )
    assert sweep != sd.sweep_global_min(
        Y, block_sizes=[1, 2], theta_bars=[0.5, 0.8], X=X, threads=1
    )
    moments = sd.data_moments(X, Y)
    assert moments == copy.deepcopy(moments) and moments != sd.data_moments(X, 2 * Y)
    prox = sd.prox_ksupport_sq(np.array([3.0, 1.0, 0.5]), 2, 0.5)
    assert prox == pickle.loads(pickle.dumps(prox))
