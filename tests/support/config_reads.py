"""Every setting the code reads, found in lib/cks's source by walking its syntax
trees: (section, option, default) of each call of a Settings object's get,
get_int, get_float or get_bool (`settings.get("server", "port", 11371)`) and
of the ConfigParser's own get (`parser.get("database", "url", fallback=None)`),
also through a helper that passes the section or option on (cksd's _networks).

A default is its value when the source fixes it (a literal, a module's
constant, a field of a dataclass's defaults, what follows `or` when the read
gives an empty value); COMPUTED when the code works it out at run time (the
host name, the number of cores, another setting).
"""

from __future__ import annotations

import ast
import importlib
import os
from dataclasses import dataclass
from typing import Any, Dict, Iterator, List, Optional, Tuple

from . import ROOT

LIB = os.path.join(ROOT, "lib")
READERS = {"get", "get_int", "get_float", "get_bool"}  # Settings' methods; get: the parser's too
RANGES = {"least", "most", "more_than"}  # get_int's and get_float's bounds
RECEIVERS = {"settings", "parser"}  # a Settings, or the ConfigParser load_settings reads


class _Computed:
    def __repr__(self) -> str:
        return "COMPUTED"


COMPUTED = _Computed()


class UnreadableSetting(Exception):
    """A read whose section or option this walk cannot tell: teach it the new style."""


@dataclass(frozen=True)
class Read:
    section: str
    option: str
    kind: str  # get, get_int, get_float or get_bool: how the value is parsed
    default: Any  # the value, or COMPUTED
    where: str  # path:line, for messages
    bounded: bool = False  # a number read with its range (least=, most=, more_than=)


def setting_reads(top: str = os.path.join(LIB, "cks")) -> List[Read]:
    reads: List[Read] = []
    for directory, _, files in sorted(os.walk(top)):
        for name in sorted(files):
            if name.endswith(".py"):
                reads.extend(_Module(os.path.join(directory, name)).reads())
    return reads


Function = Optional[ast.AST]  # a function's node; None: module level
Bound = Dict[str, Tuple[ast.expr, Function]]  # parameter -> (what a call passed, where)


class _Module:
    def __init__(self, path: str) -> None:
        self.path = path
        with open(path, encoding="utf-8") as handle:
            self.tree = ast.parse(handle.read(), path)
        self.parents: Dict[ast.AST, ast.AST] = {}
        for node in ast.walk(self.tree):
            for child in ast.iter_child_nodes(node):
                self.parents[child] = node
        self._globals: Optional[Dict[str, Any]] = None

    def reads(self) -> Iterator[Read]:
        for call in ast.walk(self.tree):
            if _is_setting_read(call):
                yield from self._reads_of(call, self._function_of(call), {})

    def _reads_of(self, call: ast.Call, function: Function, bound: Bound) -> Iterator[Read]:
        """The settings `call` reads, with `bound` the arguments of the call of
        its function being followed (empty: not following one)."""
        section, option = (self._argument(a, function, bound) for a in call.args[:2])
        if _is_text(section[0]) and _is_text(option[0]):
            yield Read(section[0].value, option[0].value, call.func.attr,
                       self._default(call, function, bound), self._where(call),
                       any(k.arg in RANGES for k in call.keywords))
            return
        if bound or not isinstance(function, ast.FunctionDef):
            raise UnreadableSetting("%s: which setting is read here?" % self._where(call))
        callers = [c for c in ast.walk(self.tree) if isinstance(c, ast.Call)
                   and isinstance(c.func, ast.Name) and c.func.id == function.name]
        if not callers:
            raise UnreadableSetting("%s: %s passes a setting on, but nothing here calls it"
                                    % (self._where(call), function.name))
        for caller in callers:
            yield from self._reads_of(call, function, self._bind(function, caller))

    def _bind(self, function: ast.FunctionDef, caller: ast.Call) -> Bound:
        """The parameters of `function` as `caller` sets them."""
        names = [a.arg for a in function.args.args]
        defaults = function.args.defaults
        bound: Bound = {name: (value, None)
                        for name, value in zip(names[len(names) - len(defaults):], defaults)}
        where = self._function_of(caller)
        bound.update((name, (value, where)) for name, value in zip(names, caller.args))
        bound.update((k.arg, (k.value, where)) for k in caller.keywords)
        return bound

    @staticmethod
    def _argument(node: ast.expr, function: Function, bound: Bound) -> Tuple[ast.expr, Function]:
        """`node` where it is evaluated: a parameter is what the call passed."""
        if isinstance(node, ast.Name) and node.id in bound:
            return bound[node.id]
        return node, function

    # --- the default -----------------------------------------------------------------

    def _default(self, call: ast.Call, function: Function, bound: Bound) -> Any:
        given = call.args[2] if len(call.args) > 2 else next(
            (k.value for k in call.keywords if k.arg == "fallback"), None)
        if given is None:
            raise UnreadableSetting("%s: a read without a default" % self._where(call))
        value = self._value(*self._argument(given, function, bound))
        parent = self.parents.get(call)
        if value is COMPUTED or value or not (isinstance(parent, ast.BoolOp)
                                              and isinstance(parent.op, ast.Or)):
            return value
        following = parent.values[parent.values.index(call) + 1:]
        if not following:
            return value
        # `read or FALLBACK`: an empty value means the fallback.
        if any(_is_setting_read(n) for n in ast.walk(following[0])):
            return COMPUTED  # another setting
        return self._value(following[0], self._function_of(call))

    def _value(self, node: ast.expr, function: Function) -> Any:
        """The value `node` has, if the source fixes it; else COMPUTED."""
        if any(isinstance(n, ast.Call) for n in ast.walk(node)):
            return COMPUTED
        namespace = dict(self._module_globals())
        for name in {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}:
            if name not in namespace:
                defaults = self._class_defaults(name, function)
                if defaults is None:
                    return COMPUTED
                namespace[name] = defaults
        return eval(compile(ast.Expression(node), self.path, "eval"), namespace)

    def _class_defaults(self, name: str, function: Function) -> Optional[Any]:
        """`name` where `function` sets it to a class's defaults (`default =
        Limits()`): such an instance; None for anything else."""
        for node in ast.walk(function) if function is not None else ():
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call) \
                    and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
                made = node.value
                cls = self._module_globals().get(getattr(made.func, "id", ""))
                if isinstance(cls, type) and not made.args and not made.keywords:
                    return cls()
        return None

    def _module_globals(self) -> Dict[str, Any]:
        if self._globals is None:
            name = os.path.relpath(self.path, LIB)[:-len(".py")].replace(os.sep, ".")
            if name.endswith(".__init__"):
                name = name[:-len(".__init__")]
            self._globals = vars(importlib.import_module(name))
        return self._globals

    # --- places ----------------------------------------------------------------------

    def _function_of(self, node: ast.AST) -> Function:
        while node in self.parents:
            node = self.parents[node]
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
                return node
        return None

    def _where(self, node: ast.AST) -> str:
        return "%s:%d" % (os.path.relpath(self.path, ROOT), node.lineno)


def _is_setting_read(node: ast.AST) -> bool:
    """A call of get_int, get_float or get_bool (only Settings has them), of get
    on `settings` or `parser`, or of get with two texts and a default on anything
    else (`settings_from(args).get("rejection", "gpg_key", "")`)."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in READERS and len(node.args) >= 2):
        return False
    receiver = node.func.value
    return (node.func.attr != "get"
            or isinstance(receiver, ast.Name) and receiver.id in RECEIVERS
            or len(node.args) == 3 and all(_is_text(a) for a in node.args[:2]))


def _is_text(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str)
