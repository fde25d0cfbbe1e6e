"""Content hashes of the code each step runs, so a code change invalidates exactly the cached steps using it.

TFX's cache key (locally) and Vertex AI's (from the compiled spec) cover a step's inputs and
parameters, not the code behind a module path. So each step whose code lives in this repository
carries a hash of that code as a parameter (`source_fingerprint`). A step's code is:

- every file of the packages its user code is named from (`models/` for Transform and the
  Trainer, whose functions are given by module path): TFX's own rule for a `module_file`, which
  hashes every file of the module's folder. A new `models/layers.py`, or a data file read next to
  the code, changes the fingerprint before anything imports it;
- the source of every module of this repository it imports, followed statically from its entry
  modules (the component's class, executor and driver; the Evaluator's module path; the modules of
  those packages), through `import` statements anywhere in a file, including inside functions, and
  every package `__init__.py` on the way.

Files are taken from where Python imports them (`sys.path`), so a run from a copy of the project
hashes the copy. The local re-run shortcut (runners/local/rerun.py) hashes its packages by the
same rule (`package_files`).
"""

from __future__ import annotations

import ast
import hashlib
import importlib.util
import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

# Top-level packages of this repository whose imports are followed (runners/ and tools/ never run in a step).
REPOSITORY_PACKAGES = ("components", "models", "pipeline")
SOURCE_FINGERPRINT_KEY = "source_fingerprint"
CUSTOM_CONFIG_KEY = "custom_config"


def code_fingerprint(*, packages: Iterable[str] = (), modules: Iterable[str] = ()) -> str:
    """sha256 (first 16 hex digits) of the code of `packages` (every file) and `modules` (with their imports)."""
    digest = hashlib.sha256()
    for name, path in code_files(packages=packages, modules=modules):
        digest.update(f"{name}\0{path.stat().st_size}\0".encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def code_files(*, packages: Iterable[str] = (), modules: Iterable[str] = ()) -> list[tuple[str, Path]]:
    """(name relative to the import root, path) of every file a step's code covers, sorted by name."""
    files: dict[str, Path] = {}
    entries = [name for name in modules if _in_repository(name)]
    for package in packages:
        for name, path in package_files(package):
            files[name] = path
            if path.suffix == ".py":
                entries.append(_module_name(name))
    for name, path in _import_closure(entries).items():
        files[name] = path
    return sorted(files.items())


def package_files(package: str) -> Iterator[tuple[str, Path]]:
    """Every file under a top-level package, by name relative to its import root, except caches and
    hidden files (editor swap files, .DS_Store)."""
    root = _package_dir(package)
    for path in sorted(root.rglob("*")):
        relative = path.relative_to(root.parent)
        if any(part == "__pycache__" or part.startswith(".") for part in relative.parts):
            continue
        if path.is_file() and path.suffix != ".pyc":
            yield relative.as_posix(), path


def component_modules(component: Any) -> list[str]:
    """The repository modules a component instance runs: its class, executor class and driver class."""
    classes = [type(component), getattr(type(component), "DRIVER_CLASS", None)]
    executor_spec = getattr(component, "executor_spec", None)
    classes.append(getattr(executor_spec, "executor_class", None))
    return sorted({cls.__module__ for cls in classes if cls is not None and _in_repository(cls.__module__)})


def add_source_fingerprint(component: Any, *, packages: Iterable[str] = (), modules: Iterable[str] = ()) -> Any:
    """Adds `source_fingerprint` (the component's own code, plus `packages` and `modules`) to its
    exec properties, which TFX's cache key and the compiled Vertex AI spec include.

    For components without a `custom_config` parameter. TFX's compilers (local IR and KFP v2) compile
    every entry of `exec_properties`, declared or not, and executors read only the keys they know.
    """
    if SOURCE_FINGERPRINT_KEY in component.exec_properties:
        raise ValueError(f"{component.id} already has a {SOURCE_FINGERPRINT_KEY} exec property")
    fingerprint = code_fingerprint(packages=packages, modules=[*component_modules(component), *modules])
    component.exec_properties[SOURCE_FINGERPRINT_KEY] = fingerprint
    return component


def source_fingerprint_of(component: Any) -> str | None:
    """The fingerprint a component carries: its exec property, or in its custom_config."""
    properties = component.exec_properties
    if SOURCE_FINGERPRINT_KEY in properties:
        return properties[SOURCE_FINGERPRINT_KEY]
    custom_config = properties.get(CUSTOM_CONFIG_KEY)
    if isinstance(custom_config, str):
        custom_config = json.loads(custom_config)
    return (custom_config or {}).get(SOURCE_FINGERPRINT_KEY)


def _import_closure(entries: Iterable[str]) -> dict[str, Path]:
    files: dict[str, Path] = {}
    pending = list(entries)
    seen: set[str] = set()
    while pending:
        module = pending.pop()
        if module in seen:
            continue
        seen.add(module)
        found = _module_file(module)
        if found is None:
            continue  # an attribute imported from a module (`from a import name`), not a module
        for package in _parents(module):  # importing a.b.c runs a/__init__.py and a/b/__init__.py
            pending.append(package)
        name, path = found
        files[name] = path
        pending.extend(_imported_modules(path, module, is_package=path.name == "__init__.py"))
    return files


def _imported_modules(path: Path, module: str, *, is_package: bool) -> Iterator[str]:
    """Names a file imports (modules, or `module.attribute` for `from module import attribute`), in
    this repository."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node.module, node.level, module, is_package)
            names = [base, *(f"{base}.{alias.name}" for alias in node.names if alias.name != "*")]
        else:
            continue
        yield from (name for name in names if _in_repository(name))


def _absolute(target: str | None, level: int, module: str, is_package: bool) -> str:
    if level == 0:
        return target or ""
    parts = module.split(".")
    base = parts if is_package else parts[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join([*base, target] if target else base)


def _module_file(module: str) -> tuple[str, Path] | None:
    """The file of a repository module, found without importing anything."""
    top, *rest = module.split(".")
    location = _package_dir(top)
    candidates = [location.joinpath(*rest, "__init__.py")]
    if rest:
        candidates.append(location.joinpath(*rest[:-1], f"{rest[-1]}.py"))
    found = next((candidate for candidate in candidates if candidate.is_file()), None)
    return (found.relative_to(location.parent).as_posix(), found) if found else None


def _package_dir(package: str) -> Path:
    spec = importlib.util.find_spec(package)  # a top-level name: nothing is imported
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"cannot find package {package}")
    return Path(next(iter(spec.submodule_search_locations)))


def _module_name(relative: str) -> str:
    parts = relative.removesuffix(".py").split("/")
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _parents(module: str) -> list[str]:
    parts = module.split(".")
    return [".".join(parts[:index]) for index in range(1, len(parts))]


def _in_repository(name: str) -> bool:
    return name.split(".")[0] in REPOSITORY_PACKAGES
