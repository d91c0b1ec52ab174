"""Does a student's function do the work itself? Hidden tests of an exercise call :func:`delegates_to` to fail a
solution that only forwards to the library's reference implementation -- by a direct call, an import under another
name, or an attribute of the reference's module -- and then check values on inputs the student has not seen.

The check reads the function's code (and every function or lambda defined inside it): each global name it loads,
each attribute it reads from such a global, and each name it imports locally (``from m import f`` inside the body) is
resolved (in the function's globals and closure cells, or the loaded module); if one of them *is* a reference object,
or a module (or class) that holds one, the function delegates.

:func:`unavailable` makes the references unusable while a hidden test runs the student's code: every binding of a
reference in the loaded genlab modules and in the notebook's namespace is replaced by a function that fails, and put
back afterwards. A delegation that :func:`delegates_to` cannot see (``getattr(module, "na" + "me")``, importlib, a
reference captured elsewhere under a new name in a genlab module) then fails the test too.
"""
from __future__ import annotations

import dis
import inspect
import sys
import types
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager


def _codes(code: types.CodeType) -> Iterable[types.CodeType]:
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _scope(fn: Callable) -> dict:
    scope = dict(getattr(fn, "__globals__", {}))
    closure = getattr(fn, "__closure__", None) or ()
    for name, cell in zip(fn.__code__.co_freevars, closure):
        try:
            scope[name] = cell.cell_contents
        except ValueError:                                     # an empty cell
            pass
    return scope


def delegates_to(fn: Callable, *references: object) -> list[str]:
    """The names through which ``fn`` reaches one of ``references`` (empty: it does not). Methods are checked through
    their function; classes through every method defined in the class body."""
    if inspect.isclass(fn):
        return [f"{fn.__name__}.{n}: {hit}" for n, m in vars(fn).items() if inspect.isfunction(m)
                for hit in delegates_to(m, *references)]
    fn = getattr(fn, "__func__", fn)
    if not hasattr(fn, "__code__"):
        raise TypeError(f"expected a function, method or class, got {type(fn).__name__}")
    refs = [getattr(r, "__func__", r) for r in references]

    def holds(obj: object) -> bool:
        if any(obj is r for r in refs):
            return True
        if isinstance(obj, (types.ModuleType, type)):
            return any(getattr(obj, getattr(r, "__name__", ""), None) is r for r in refs)
        return False

    scope, hits = _scope(fn), []
    for code in _codes(fn.__code__):
        loaded = None
        for ins in dis.get_instructions(code):
            if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF") and ins.argval in scope:
                loaded = scope[ins.argval]
                if holds(loaded):
                    hits.append(ins.argval)
            elif ins.opname == "IMPORT_NAME":                  # a local import: resolve the module if it is loaded
                loaded = sys.modules.get(ins.argval)
            elif ins.opname == "IMPORT_FROM" and loaded is not None:
                if any(getattr(loaded, ins.argval, None) is r for r in refs):
                    hits.append(f"{loaded.__name__}.{ins.argval}")
            elif ins.opname in ("LOAD_ATTR", "LOAD_METHOD") and loaded is not None:
                attr = getattr(loaded, ins.argval, None)
                if attr is not None and any(getattr(attr, "__func__", attr) is r for r in refs):   # bound methods too
                    hits.append(f"{getattr(loaded, '__name__', '?')}.{ins.argval}")
                loaded = attr
            else:
                loaded = None
    return sorted(set(hits))


@contextmanager
def unavailable(*references: object, namespace: dict | None = None) -> Iterator[None]:
    """While the block runs, every name bound to one of ``references`` -- an attribute of a loaded ``genlab`` module,
    a method of a class defined in one, or a key of ``namespace`` (pass the notebook's ``globals()``) -- is bound to
    a function that raises AssertionError naming the reference; everything is restored on exit, also when the block
    fails.

        expected = truncate(w, w_avg, 0.7)                      # the reference's answer, computed first
        with unavailable(truncate, namespace=globals()):
            got = my_truncate(w, w_avg, 0.7)                    # the student's code cannot reach truncate here
    """
    if not references:
        raise ValueError("unavailable() needs at least one reference to hide")

    def poison(ref: object) -> Callable:
        name = getattr(ref, "__qualname__", repr(ref))

        def refused(*args, **kwargs):
            raise AssertionError(f"this exercise must be solved without the library's {name}")
        return refused

    saved: list[tuple[object, str, object]] = []
    homes = [m for n, m in list(sys.modules.items()) if n == "genlab" or n.startswith("genlab.")]
    try:
        for ref in references:
            bad = poison(ref)
            for mod in homes:
                for attr, value in list(vars(mod).items()):
                    if value is ref:
                        saved.append((mod, attr, value))
                        setattr(mod, attr, bad)
                    elif isinstance(value, type) and value.__module__.startswith("genlab"):
                        for name, member in list(vars(value).items()):   # a method: poisoned on its class
                            if member is getattr(ref, "__func__", ref):
                                saved.append((value, name, member))
                                setattr(value, name, bad)
            for key, value in list((namespace or {}).items()):
                if value is ref:
                    saved.append((namespace, key, value))
                    namespace[key] = bad
        yield
    finally:
        for home, attr, value in reversed(saved):
            if isinstance(home, dict):
                home[attr] = value
            else:
                setattr(home, attr, value)
