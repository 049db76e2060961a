"""Load a WSGI callable from a Gunicorn-style specification.

``MODULE[:EXPR]`` where EXPR is a dotted attribute path (default ``application``),
optionally called with literal arguments: ``pkg.app:create_app("prod", debug=False)``.
Every failure raises LoadError with one line that names the module, the attribute
and the Python exception.
"""

import ast
import importlib
import sys


class LoadError(Exception):
    pass


def _one_line(exc):
    text = "%s: %s" % (type(exc).__name__, exc)
    return " ".join(text.split())


def _dotted(node, spec):
    names = []
    while isinstance(node, ast.Attribute):
        names.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        raise LoadError("%r: expected MODULE:NAME, a dotted name or a call with literal arguments" % spec)
    names.append(node.id)
    return list(reversed(names))


def load(spec):
    module_name, _, expr = spec.partition(":")
    module_name = module_name.strip()
    expr = expr.strip() or "application"
    if not module_name:
        raise LoadError("%r: no module name (expected MODULE:CALLABLE)" % spec)
    try:
        node = ast.parse(expr, mode="eval").body
    except SyntaxError:
        raise LoadError("%r: cannot parse %r as a name or a call" % (spec, expr)) from None
    args = kwargs = None
    if isinstance(node, ast.Call):
        try:
            args = [ast.literal_eval(a) for a in node.args]
            kwargs = {k.arg: ast.literal_eval(k.value) for k in node.keywords if k.arg}
        except ValueError:
            raise LoadError("%r: factory arguments must be literals" % spec) from None
        node = node.func
    names = _dotted(node, spec)
    try:
        obj = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and (module_name == exc.name or module_name.startswith(exc.name + ".")):
            raise LoadError("cannot import module %r: no module named %r (sys.path[0] is %r)"
                            % (module_name, exc.name, sys.path[0] if sys.path else "")) from None
        raise LoadError("cannot import module %r: %s" % (module_name, _one_line(exc))) from None
    except BaseException as exc:  # a broken app module: say so in one line
        raise LoadError("cannot import module %r: %s" % (module_name, _one_line(exc))) from None
    path = module_name
    for name in names:
        try:
            obj = getattr(obj, name)
        except AttributeError:
            raise LoadError("module %r has no attribute %r" % (path if path == module_name else module_name,
                                                             ".".join(names[: names.index(name) + 1]))) from None
        path += "." + name
    if args is not None:
        try:
            obj = obj(*args, **kwargs)
        except BaseException as exc:
            raise LoadError("calling %s:%s failed: %s" % (module_name, expr, _one_line(exc))) from None
    if not callable(obj):
        raise LoadError("%s:%s is not callable (it is %s)" % (module_name, expr, type(obj).__name__))
    return obj
