"""Argument orders that changed in 1.0 (inputs before targets) for the torch functions.

A thin layer over :func:`structdrop._migration.choose_argument_order`: it also covers calls that
pass some arrays by position and the rest by keyword (an old partial call always collides with
the new names, since the argument that moved is the last of the old order and the first of the
new one).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from .._migration import choose_argument_order, positional_became_keyword, warn_old_spelling

F = TypeVar("F", bound=Callable[..., Any])

__all__ = ["init_positional_became_keyword", "reordered", "shapes_match"]


def init_positional_became_keyword(
    class_name: str, positional: int, names: Sequence[str]
) -> Callable[[F], F]:
    """:func:`structdrop._migration.positional_became_keyword` for an ``__init__``: the counts
    and the warning's call leave ``self`` out, as the user's call does."""

    def decorate(init: F) -> F:
        @functools.wraps(init)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
            bound = positional_became_keyword(class_name, positional, names)(
                functools.partial(init, self)
            )
            return bound(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def shapes_match(*equal: tuple[str, int, str, int]) -> Callable[[Mapping[str, Any]], bool]:
    """A ``shapes_agree`` for :func:`reordered`: every ``(name, axis, name, axis)`` pair of
    dimensions is equal (arrays not named in a call are skipped; no shape means no fit)."""

    def agree(named: Mapping[str, Any]) -> bool:
        for a, i, b, j in equal:
            if a not in named or b not in named:
                continue
            sa, sb = getattr(named[a], "shape", None), getattr(named[b], "shape", None)
            if sa is None or sb is None or len(sa) <= i or len(sb) <= j or sa[i] != sb[j]:
                return False
        return True

    return agree


def reordered(
    function_name: str,
    leading: int,
    new_names: Sequence[str],
    old_names: Sequence[str],
    shapes_agree: Callable[[Mapping[str, Any]], bool],
) -> Callable[[F], F]:
    """Decorator: the ``new_names`` parameters (after ``leading`` fixed ones) were ``old_names``
    before 1.0. A call whose positional arrays fit only the old order is taken with a
    FutureWarning; one that fits both is refused with a TypeError showing the keyword call."""

    def decorate(function: F) -> F:
        # parameters after the reordered ones, by name: positional ones join the keywords
        after = list(inspect.signature(function).parameters)[leading + len(new_names) :]

        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            head, arrays = args[:leading], args[leading : leading + len(new_names)]
            tail = args[leading + len(new_names) :]
            if not arrays or len(tail) > len(after):
                return function(*args, **kwargs)
            for name, value in zip(after, tail):
                if name in kwargs:
                    raise TypeError(f"{function_name}() got multiple values for {name}")
                kwargs[name] = value
            k = len(arrays)
            as_new, as_old = dict(zip(new_names, arrays)), dict(zip(old_names, arrays))
            new_clash = any(n in kwargs for n in as_new)
            old_clash = any(n in kwargs for n in as_old)
            if new_clash and not old_clash:
                warn_old_spelling(
                    f"{function_name}({', '.join(old_names)}) (the order before 1.0)",
                    f"{function_name}({', '.join(new_names)})",
                )
                return function(*head, **as_old, **kwargs)
            if new_clash or old_clash or set(as_new) != set(as_old):
                # only the new order can be complete (or neither: the function reports it)
                return function(*head, *arrays, **kwargs)
            named = choose_argument_order(
                function_name,
                arrays,
                new_names[:k],
                old_names[:k],
                lambda given: shapes_agree({**kwargs, **given}),
            )
            return function(*head, **named, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate
