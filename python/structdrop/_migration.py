"""The 1.0 migration: old argument names, orders and result fields keep working for one release.

Each old spelling still gives the old answer, with a ``FutureWarning`` that shows the new
spelling; an old call whose meaning the arguments cannot prove is refused with a ``TypeError``
that shows the new call. The decorators keep the new signature visible to ``inspect`` and
``help`` (they set ``__wrapped__``), so the documented signature is the 1.0 one.
"""

from __future__ import annotations

import functools
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

__all__ = [
    "warn_old_spelling",
    "renamed_keywords",
    "positional_became_keyword",
    "choose_argument_order",
    "renamed_field",
]

F = TypeVar("F", bound=Callable[..., Any])


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def _caller_stacklevel() -> int:
    """The stacklevel of the first frame outside this package: the user's line, however many
    wrappers of the package lie between (a warning pointing into structdrop helps nobody)."""
    level = 1
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level


def warn_old_spelling(old: str, new: str) -> None:
    """Warn (FutureWarning, at the user's line) that ``old`` is spelled ``new`` from 1.0 on and
    goes after this release."""
    warnings.warn(
        f"{old} is deprecated and will be removed after structdrop 1.0; write {new}",
        FutureWarning,
        stacklevel=_caller_stacklevel(),
    )


def renamed_keywords(function_name: str, **old_to_new: str) -> Callable[[F], F]:
    """Decorator: accept each old keyword ``old=`` as the new one, with a FutureWarning.

    Passing both the old and the new name raises ``TypeError`` (as Python does for a keyword
    given twice).

    Example:
        >>> @renamed_keywords("f", r="block_size")
        ... def f(x, block_size): return block_size
        >>> import warnings
        >>> with warnings.catch_warnings(record=True):
        ...     warnings.simplefilter("always")
        ...     f(1, r=3)
        3
    """

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            for old, new in old_to_new.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(
                            f"{function_name}() got both {old}= (the old name) and {new}="
                        )
                    warn_old_spelling(f"{function_name}({old}=...)", f"{function_name}({new}=...)")
                    kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def positional_became_keyword(
    function_name: str, positional: int, names: Sequence[str]
) -> Callable[[F], F]:
    """Decorator: positional arguments past the first ``positional`` are the old positional
    parameters ``names`` (in the old order), now keyword-only; accept them with a FutureWarning
    that shows the call with keywords.

    Example:
        >>> @positional_became_keyword("g", 1, ("block_size", "theta_bar"))
        ... def g(Y, *, block_size, theta_bar): return (block_size, theta_bar)
        >>> import warnings
        >>> with warnings.catch_warnings(record=True):
        ...     warnings.simplefilter("always")
        ...     g("Y", 5, 0.5)
        (5, 0.5)
    """

    def decorate(function: F) -> F:
        @functools.wraps(function)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if len(args) > positional:
                extra = args[positional:]
                if len(extra) > len(names):
                    raise TypeError(
                        f"{function_name}() takes at most {positional + len(names)} positional "
                        f"arguments (old form), got {len(args)}"
                    )
                given = dict(zip(names, extra))
                for name in given:
                    if name in kwargs:
                        raise TypeError(f"{function_name}() got multiple values for {name}")
                head = ["..."] * positional  # none when every argument became a keyword
                new = ", ".join(head + [f"{name}=..." for name in given])
                warn_old_spelling(
                    f"{function_name}({', '.join(head + ['...' for _ in given])}) with "
                    f"{', '.join(given)} passed by position",
                    f"{function_name}({new})",
                )
                kwargs.update(given)
                args = args[:positional]
            return function(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def choose_argument_order(
    function_name: str,
    args: Sequence[Any],
    new_names: Sequence[str],
    old_names: Sequence[str],
    shapes_agree: Callable[[Mapping[str, Any]], bool],
) -> dict[str, Any]:
    """Name positional arrays whose order changed in 1.0, from their shapes.

    ``shapes_agree(named)`` says whether arrays named as given have consistent shapes. When only
    the new order fits, it is taken; when only the old order fits, it is taken with a
    FutureWarning; when both fit (for instance every array square and of one size) the call is
    ambiguous and refused with a TypeError that shows the keyword call; when neither fits, the
    new order is returned so that the function's own checks report the shapes.

    Returns:
        The arrays by name.

    Raises:
        TypeError: both orders fit the shapes.
    """
    as_new = dict(zip(new_names, args))
    as_old = dict(zip(old_names, args))
    new_fits, old_fits = shapes_agree(as_new), shapes_agree(as_old)
    keyword_call = f"{function_name}({', '.join(f'{n}={n}' for n in new_names)})"
    if new_fits and old_fits and any(as_new[n] is not as_old[n] for n in new_names):
        raise TypeError(
            f"{function_name}() takes ({', '.join(new_names)}) since structdrop 1.0, before it "
            f"({', '.join(old_names)}); these shapes fit both orders, so the call is ambiguous: "
            f"pass the arrays by keyword, {keyword_call}"
        )
    if old_fits and not new_fits:
        warn_old_spelling(
            f"{function_name}({', '.join(old_names)}) (the order before 1.0)",
            f"{function_name}({', '.join(new_names)}) or {keyword_call}",
        )
        return as_old
    return as_new


def renamed_field(old: str, new: str, owner: str) -> property:
    """A read-only property ``old`` on a result type that returns field ``new``, with a
    FutureWarning (for result fields renamed in 1.0)."""

    def get(self: object) -> Any:
        warn_old_spelling(f"{owner}.{old}", f"{owner}.{new}")
        return getattr(self, new)

    return property(get, doc=f"Deprecated name of :attr:`{new}` (removed after 1.0).")
