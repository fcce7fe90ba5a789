"""One generic registry front end: a name -> a validated config dataclass -> an instance.

One :class:`Registry` each for memories, datasets, benchmarks and runner backends. Built-ins are
found one way: every class of the registry's package decorated ``@register_<kind>("name")`` (read
from the source with :mod:`ast`, so ``memorybench list`` names them without importing torch);
the first lookup imports those modules, whose decorators register the classes. External packages
plug in through the entry-point group (``memorybench.memories``, ...), read on the same first
lookup. A plugin that fails to import is reported as broken and skipped; two plugins (or a plugin
and a built-in) claiming one name are reported naming both, and that name refuses to resolve.

:meth:`Registry.provenance` says where a registered class comes from (its distribution and
version, or the ``--include`` file) and hashes its code, so every result can record the code that
produced it (:func:`code_hash`).
"""

from __future__ import annotations

import ast
import difflib
import hashlib
import importlib
import importlib.metadata
import importlib.util
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """An unknown, duplicate, colliding or broken registry name; ``str()`` is a one-line message."""

    def __str__(self) -> str:  # KeyError quotes its message; we want it plain.
        return str(self.args[0]) if self.args else ""


def suggest(name: str, choices: list[str]) -> str:
    """A ' (did you mean X?)' hint for a mistyped name, or ''."""
    close = difflib.get_close_matches(name, choices, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class Listing:
    """One line of ``memorybench list``, found without importing the registered code."""

    name: str
    summary: str  # the first line of the class docstring (a plugin: where it comes from)
    origin: str  # module.Class of a built-in, or the entry point's value
    problem: str = ""  # a name collision: the one-line error a lookup of this name raises


# ---------------------------------------------------------------------------- built-ins, read from source
def _package_files(package: str) -> Iterator[tuple[str, Path]]:
    """(module name, file) for every module under ``package`` (its ``__init__`` is not executed)."""
    spec = importlib.util.find_spec(package)
    for root in (spec.submodule_search_locations or []) if spec else []:
        for path in sorted(Path(root).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            yield ".".join((package, *parts)), path


def _registered_classes(tree: ast.Module, decorator: str) -> Iterator[tuple[str, ast.ClassDef]]:
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        for call in node.decorator_list:
            if not (isinstance(call, ast.Call) and call.args and isinstance(call.args[0], ast.Constant)):
                continue
            called = call.func
            called_name = called.id if isinstance(called, ast.Name) else getattr(called, "attr", "")
            if called_name == decorator and isinstance(call.args[0].value, str):
                yield call.args[0].value, node


def scan_builtins(package: str, decorator: str) -> list[Listing]:
    """Every class under ``package`` decorated ``@<decorator>("name")``, read with :mod:`ast`."""
    found = []
    for module, path in _package_files(package):
        text = path.read_text(encoding="utf-8")
        if decorator not in text:
            continue
        for name, node in _registered_classes(ast.parse(text, str(path)), decorator):
            doc = (ast.get_docstring(node) or "").strip()
            found.append(Listing(name, doc.splitlines()[0] if doc else "", f"{module}.{node.name}"))
    return found


# ---------------------------------------------------------------------------- plugins
def _distribution(entry_point: Any) -> str:
    dist = getattr(entry_point, "dist", None)
    return str(getattr(dist, "name", None) or "an unknown distribution")


def plugin_entry_points(group: str) -> dict[str, list[Any]]:
    """Entry points of ``group`` by name (nothing is loaded); a distribution seen twice on the path
    (an editable and a regular install of the same code) counts once."""
    by_name: dict[str, list[Any]] = {}
    for entry_point in importlib.metadata.entry_points(group=group):
        same = by_name.setdefault(entry_point.name, [])
        if all(other.value != entry_point.value for other in same):
            same.append(entry_point)
    return by_name


def _origin(entry_point: Any) -> str:
    return f"{entry_point.value} from distribution {_distribution(entry_point)}"


def collision(kind: str, name: str, entry_points: list[Any], builtin: str | None) -> str:
    """The one-line error for a name claimed twice ('' when it is not)."""
    if len(entry_points) > 1:
        first, second = entry_points[:2]
        return (
            f"{kind} {name!r} is registered by two plugins: {_origin(first)} and {_origin(second)}; "
            "uninstall or rename one"
        )
    if builtin and entry_points:
        return (
            f"{kind} plugin {name!r} ({_origin(entry_points[0])}) collides with the built-in {builtin} "
            "of distribution memorybench; rename the plugin"
        )
    return ""


class Registry(Generic[T]):
    """Names -> registered classes of one ``kind`` (used in messages), subclasses of ``base``.

    ``builtin_package``: where the built-ins live (every ``@register_<kind>`` class under it);
    ``base``: the class every registered target must subclass, or its ``"module:Class"`` path
    (resolved on first registration, so the registry itself imports nothing heavy);
    ``section``: the suite section naming its configs in messages (default: the group's last part).
    """

    instances: ClassVar[dict[str, Registry[Any]]] = {}  # entry-point group -> its registry, once created

    def __init__(
        self,
        kind: str,
        entry_point_group: str,
        *,
        builtin_package: str | None = None,
        base: type | str | None = None,
        section: str | None = None,
    ):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self.builtin_package = builtin_package
        self.decorator = f"register_{kind}"
        self.section = section or entry_point_group.rsplit(".", 1)[-1]
        self._base = base
        self._entries: dict[str, T] = {}
        self._loaded = False
        self.plugin_errors: dict[str, str] = {}  # name -> why the plugin could not be loaded
        self.collisions: dict[str, str] = {}  # name -> the one-line error naming both claimants
        self.distributions: dict[str, str] = {}  # plugin name -> the distribution whose entry point loaded it
        Registry.instances[entry_point_group] = self

    @property
    def base(self) -> type | None:
        if isinstance(self._base, str):
            module, _, qualname = self._base.partition(":")
            target: Any = importlib.import_module(module)
            for part in qualname.split("."):
                target = getattr(target, part)
            self._base = target
        return self._base if isinstance(self._base, type) else None

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator registering ``target`` under ``name``; a second, different target is an error,
        and so is a target that does not subclass the registry's base."""

        def decorator(target: T) -> T:
            base = self.base
            if base is not None and not (isinstance(target, type) and issubclass(target, base)):
                raise RegistryError(
                    f"cannot register {_qualname(target)} as {self.kind} {name!r}: "
                    f"it does not subclass {_qualname(base)}"
                )
            existing = self._entries.get(name)
            if existing is not None and existing is not target:
                raise RegistryError(
                    f"{self.kind} {name!r} is already registered by "
                    f"{_qualname(existing)}; cannot register {_qualname(target)} under the same name"
                )
            self._entries[name] = target
            if isinstance(target, type):
                target.registry_name = name  # type: ignore[attr-defined]
            return target

        return decorator

    def builtin_modules(self) -> list[str]:
        """The modules holding the built-ins (importing them registers them)."""
        if not self.builtin_package:
            return []
        modules = [listing.origin.rpartition(".")[0] for listing in scan_builtins(self.builtin_package, self.decorator)]
        return list(dict.fromkeys(modules))

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        try:
            for module in self.builtin_modules():
                importlib.import_module(module)
        except BaseException:
            self._loaded = False
            raise
        for name, entry_points in plugin_entry_points(self.entry_point_group).items():
            existing = self._entries.get(name)
            problem = collision(self.kind, name, entry_points, _qualname(existing) if existing is not None else None)
            if problem:
                self.collisions[name] = problem
                warnings.warn(problem, stacklevel=3)
                continue
            self._load_plugin(name, entry_points[0])

    def _load_plugin(self, name: str, entry_point: Any) -> None:
        try:
            self.register(name)(entry_point.load())
            self.distributions[name] = _distribution(entry_point)
        except Exception as error:  # a broken plugin must not break the suite
            message = str(error) if isinstance(error, RegistryError) else f"{type(error).__name__}: {error}"
            self.plugin_errors[name] = f"{_origin(entry_point)}: {message}"
            warnings.warn(f"skipping broken {self.kind} plugin {name!r} ({self.plugin_errors[name]})", stacklevel=4)

    def get(self, name: str) -> T:
        """The target registered as ``name``; unknown names raise with the valid choices, broken
        or colliding plugins with what is wrong with them."""
        self._load()
        if name in self.collisions:
            raise RegistryError(self.collisions[name])
        if name in self._entries:
            return self._entries[name]
        if name in self.plugin_errors:
            raise RegistryError(f"{self.kind} {name!r} is a broken plugin ({self.plugin_errors[name]})")
        choices = self.available()
        raise RegistryError(
            f"unknown {self.kind} {name!r}{suggest(name, choices)}; available: {', '.join(choices) or '(none)'}"
        )

    def config_for(self, name: str, settings: Any = None, where: str | None = None) -> Any:
        """``settings`` validated against ``name``'s ``config_class`` (one-line errors at ``where``)."""
        from memorybench.memories.configuration import from_mapping

        target: Any = self.get(name)
        return from_mapping(target.config_class, settings, where or f"{self.section}.{name}")

    def create(self, name: str, settings: Any = None, *, where: str | None = None, **init_kwargs: Any) -> Any:
        """Name -> validated config -> instance: ``cls(config, **init_kwargs)``."""
        target: Any = self.get(name)
        return target(self.config_for(name, settings, where), **init_kwargs)

    def available(self) -> list[str]:
        """Sorted registered names (colliding names left out: they do not resolve)."""
        self._load()
        return sorted(name for name in self._entries if name not in self.collisions)

    def __contains__(self, name: object) -> bool:
        self._load()
        return name in self._entries and name not in self.collisions

    def __iter__(self) -> Iterator[str]:
        return iter(self.available())

    def describe(self, name: str) -> str:
        """First line of the target's docstring: the one-line description ``list`` prints."""
        return _summary(self.get(name))

    def provenance(self, name: str) -> dict[str, Any]:
        """Where ``name``'s class comes from and a hash of its code (see :func:`code_provenance`)."""
        target: Any = self.get(name)
        return {"name": name, **code_provenance(target, self.distributions.get(name))}

    def registered(self) -> list[Listing]:
        """What is registered so far (``--include`` code, imported modules), loading nothing."""
        return [Listing(name, _summary(target), _qualname(target)) for name, target in sorted(self._entries.items())]

    def listing(self) -> list[Listing]:
        """Built-ins and plugins with their descriptions, importing none of them."""
        return static_listing(self.kind, self.entry_point_group, self.builtin_package)


def static_listing(kind: str, entry_point_group: str, builtin_package: str | None) -> list[Listing]:
    """What :meth:`Registry.listing` returns, for a registry whose module is not imported."""
    builtins = (
        {item.name: item for item in scan_builtins(builtin_package, f"register_{kind}")} if builtin_package else {}
    )
    listings = dict(builtins)
    for name, entry_points in plugin_entry_points(entry_point_group).items():
        builtin = builtins.get(name)
        problem = collision(kind, name, entry_points, builtin.origin if builtin else None)
        first = entry_points[0]
        listings[name] = Listing(name, f"(plugin: {_origin(first)})", first.value, problem)
    return sorted(listings.values(), key=lambda item: item.name)


def _summary(target: object) -> str:
    doc = (getattr(target, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


def _qualname(target: object) -> str:
    module = getattr(target, "__module__", "?")
    return f"{module}.{getattr(target, '__qualname__', repr(target))}"


# ---------------------------------------------------------------------------- provenance
USER_MODULE_PREFIX = "memorybench_user_"  # the module name of an --include file is this + its stem


def code_modules(target: type) -> list[str]:
    """The modules whose source defines ``target``: every module holding a class of its MRO, within
    memorybench or ``target``'s own top-level package (so torch's ``nn.Module`` is left out, and a
    plugin subclassing a built-in model depends on that model's file too)."""
    own = target.__module__.split(".")[0]
    modules = [cls.__module__ for cls in target.__mro__ if cls.__module__.split(".")[0] in (own, "memorybench")]
    return list(dict.fromkeys(modules))


def code_hash(target: type) -> str | None:
    """sha256 (first 16 hex digits) of the source files of :func:`code_modules`, in MRO order; None
    when one of them has no source file (a class made at run time)."""
    digest = hashlib.sha256()
    for module in code_modules(target):
        path = getattr(sys.modules.get(module), "__file__", None)
        if not path or not Path(path).is_file():
            return None
        digest.update(module.encode() + b"\0" + Path(path).read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def code_provenance(target: type, distribution: str | None = None) -> dict[str, Any]:
    """``{"class", "package", "version", "file", "code_hash", "code_modules"}`` of a registered class.

    ``package``/``version``: the distribution that provides it (``distribution`` when an entry point
    named it, else the one installing its top-level module; built-ins: memorybench). A class from an
    ``--include`` file has no package: ``file`` is that file's path instead."""
    module = target.__module__
    top = module.split(".")[0]
    path = getattr(sys.modules.get(module), "__file__", None)
    if distribution is None and not top.startswith(USER_MODULE_PREFIX):
        names = importlib.metadata.packages_distributions().get(top) or []
        distribution = names[0] if names else None
    version = None
    if distribution is not None:
        try:
            version = importlib.metadata.version(distribution)
        except importlib.metadata.PackageNotFoundError:
            version = None
    return {
        "class": f"{module}.{target.__qualname__}",
        "package": distribution,
        "version": version,
        "file": None if distribution else (str(Path(path).resolve()) if path else None),
        "code_hash": code_hash(target),
        "code_modules": code_modules(target),
    }


def import_user_module(path_or_module: str) -> None:
    """Import unpublished plugin code the user names explicitly (``--include``).

    Accepts a dotted module name or a path to a ``.py`` file; nothing else is ever imported.
    """
    path = Path(path_or_module)
    if path.suffix == ".py" or path.exists():
        if not path.is_file():
            raise FileNotFoundError(f"--include: no such Python file {str(path)!r}")
        module_name = f"{USER_MODULE_PREFIX}{path.stem}"
        loaded = sys.modules.get(module_name)
        if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() == path.resolve():
            return  # imported already (like a second ``import``): its classes are registered
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ImportError(f"--include: cannot import {str(path)!r}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]  # a half-imported plugin must not linger
            raise
    else:
        importlib.import_module(path_or_module)
