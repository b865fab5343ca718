#!/usr/bin/env python3
"""Extract the upstream contract of a vLLM release from its own source.

Downloads the release from PyPI (the sdist ``vllm-<ver>.tar.gz``; a wheel if
there is no sdist), checks its sha256 against PyPI's, and reads the Python
source statically with ``ast`` (vLLM is never imported, so no torch needed).
Writes ``vllm-<ver>.json`` next to this script:

    {engine, version, source {url, sha256, files}, flags, flag_aliases,
     flag_choices, env, env_other, metrics, metric_types, image}

* ``flags``: every option string ``vllm serve`` accepts, as registered with
  argparse: long forms, short aliases (``-tp``) and the ``--no-<x>`` forms
  argparse's BooleanOptionalAction adds. Followed from
  ``vllm/entrypoints/cli/serve.py`` (ServeSubcommand.subparser_init) through
  ``make_arg_parser`` and every ``<Class>.add_cli_args`` it reaches
  (FrontendArgs, AsyncEngineArgs, EngineArgs). Flags that EngineArgs takes
  over from a config dataclass field (``**parallel_kwargs["..."]``) are
  booleans when that field's annotation holds ``bool``, as in vLLM's
  ``_compute_kwargs``; frontend classes that register one flag per dataclass
  field (``f"--{key.replace('_', '-')}"``) get one flag per field.
  Not listed: what FlexibleArgumentParser accepts on top (``--foo_bar``
  spellings, ``-O3``, ``--json-arg.key value``) and argparse prefix
  abbreviations.
* ``bench_serve_flags`` / ``bench_serve_flag_choices``: the same for
  ``vllm bench serve`` (the load generator the benchmark role's Job runs),
  from ``vllm/entrypoints/cli/benchmark/serve.py``
  (BenchmarkServingSubcommand.add_cli_args) through
  ``vllm/benchmarks/serve.py`` add_cli_args and add_dataset_parser.
* ``flag_aliases``: short option -> long option.
* ``flag_choices``: values from a static ``choices=[...]`` or from the
  ``Literal`` annotation of the config field behind the flag (type aliases
  followed across modules, ``TYPE_CHECKING`` imports preferred); choices
  computed at run time (from the platform, plugins) are left out. Where the
  annotation also allows ``str`` (--quantization, --load-format,
  --distributed-executor-backend) argparse does not enforce them; vLLM
  checks the value later, and plugins may add more.
* ``env``: the keys of ``environment_variables`` in ``vllm/envs.py``; vLLM
  warns about (or, with --fail-on-environ-validation, rejects) any other
  ``VLLM_*`` variable. ``env_other``: other names read with ``os.environ``
  / ``os.getenv`` anywhere in the package (a text scan; informational).
* ``metrics``: every ``vllm:<name>`` string literal in the package (outside
  vllm/benchmarks, and not as a ``startswith`` prefix). ``metric_types``:
  counter/gauge/histogram where the literal sits in a call to a
  Counter/Gauge/Histogram class, else absent. prometheus_client appends
  ``_total`` to counters and ``_bucket/_sum/_count`` to histograms when
  exposing them.
* ``image``: ARGs of docker/Dockerfile (sdist only) and whether
  requirements/{common,cuda}.txt name ray.

Standard library only. ``--archive PATH`` uses a downloaded sdist/wheel
instead of the network; ``--expect=--some-flag`` (repeatable) makes the exit
status 1 when a flag is missing.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import json
import re
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path
from urllib.parse import urljoin

ENGINE = "vllm"
DEFAULT_VERSION = "0.34.0"
HERE = Path(__file__).resolve().parent
TIMEOUT = 300
SERVE = "vllm/entrypoints/cli/serve.py"
# `vllm bench serve` (the load generator a benchmark Job runs): BenchmarkServingSubcommand.add_cli_args
BENCH_SERVE = "vllm/entrypoints/cli/benchmark/serve.py"
ENVS = "vllm/envs.py"
METRIC_RE = re.compile(r"^vllm:[A-Za-z_][A-Za-z0-9_]*$")
BUILTIN_HINTS = {"bool", "int", "float", "str", "dict", "list", "tuple", "set", "type", "Any"}
# functions followed from the serve sub-command to the add_argument calls
FOLLOW_RE = re.compile(r"^(make_arg_parser|add_cli_args|add_.*_args)$")
# the benchmark's parser also goes through add_dataset_parser (vllm/benchmarks/datasets)
BENCH_FOLLOW_RE = re.compile(r"^(add_cli_args|add_.*_args|add_.*_parser)$")


# --------------------------------------------------------------------------- download

def _get(url: str) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "gpuinfer-contract-extract"})
    with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
        return resp.read()


def pypi_files(project: str, version: str, log) -> tuple[str, list[dict]]:
    """(base URL, file entries) of one release, via the per-version JSON or the project JSON."""
    for url in (f"https://pypi.org/pypi/{project}/{version}/json",
                f"https://pypi.org/pypi/{project}/json"):
        try:
            meta = json.loads(_get(url))
        except (urllib.error.URLError, OSError, ValueError) as exc:
            log(f"pypi: {url}: {exc}")
            continue
        files = meta["urls"] if url.endswith(f"/{version}/json") else meta["releases"].get(version)
        if files:
            return url, files
        log(f"pypi: {url}: no files for {version}")
    raise SystemExit(f"pypi: no release files found for {project}=={version}")


def download(project: str, version: str, tmp: Path, log) -> tuple[Path, str, str]:
    """Download the sdist (else a wheel) into tmp; return (path, url, sha256)."""
    base, files = pypi_files(project, version, log)
    files = [f for f in files if not f.get("yanked")]
    sdists = [f for f in files if f["packagetype"] == "sdist"]
    wheels = sorted((f for f in files if f["filename"].endswith(".whl")),
                    key=lambda f: ("x86_64" not in f["filename"], f["filename"]))
    if not (sdists or wheels):
        raise SystemExit(f"pypi: {project}=={version} has neither an sdist nor a wheel")
    entry = (sdists or wheels)[0]
    url = urljoin(base, entry["url"])  # some mirrors give relative URLs
    log(f"downloading {url}")
    data = _get(url)
    sha = hashlib.sha256(data).hexdigest()
    expected = entry.get("digests", {}).get("sha256")
    if expected and sha != expected:
        raise SystemExit(f"sha256 mismatch for {url}: got {sha}, PyPI says {expected}")
    path = tmp / entry["filename"]
    path.write_bytes(data)
    return path, url, sha


def read_archive(path: Path) -> dict[str, str]:
    """Text of the .py/.txt/Dockerfile members, keyed by path inside the project."""
    wanted = re.compile(r"(\.py|\.txt|Dockerfile)$")
    out: dict[str, str] = {}
    if path.suffix == ".whl" or zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:
            for name in zf.namelist():
                if wanted.search(name):
                    out[name] = zf.read(name).decode("utf-8", "replace")
        return out
    with tarfile.open(path) as tf:
        for m in tf.getmembers():
            if m.isfile() and wanted.search(m.name):
                rel = m.name.split("/", 1)[1] if "/" in m.name else m.name
                out[rel] = tf.extractfile(m).read().decode("utf-8", "replace")
    return out


# --------------------------------------------------------------------------- modules

class Source:
    """Parsed modules of the package, with name resolution across imports."""

    def __init__(self, files: dict[str, str], package: str, exclude: tuple[str, ...] = ()):
        self.files = files
        self.package = package
        self.exclude = exclude  # path prefixes left out of the package-wide scans
        self.used: set[str] = set()
        self._trees: dict[str, ast.Module] = {}
        self._resolving: set[tuple[str, str]] = set()

    def path_of(self, module: str) -> str | None:
        base = module.replace(".", "/")
        for cand in (f"{base}.py", f"{base}/__init__.py"):
            if cand in self.files:
                return cand
        return None

    def tree(self, path: str) -> ast.Module:
        if path not in self._trees:
            self._trees[path] = ast.parse(self.files[path], path)
        self.used.add(path)
        return self._trees[path]

    def module_name(self, path: str) -> str:
        return path.removesuffix(".py").removesuffix("/__init__").replace("/", ".")

    def definitions(self, path: str, name: str) -> list[tuple[str, ast.AST]]:
        """Top-level (incl. if/else branches) definitions of name: (path, node).

        Imports are followed; TYPE_CHECKING branches come first.
        """
        key = (path, name)
        if key in self._resolving:  # import cycle
            return []
        self._resolving.add(key)
        found: list[tuple[str, ast.AST]] = []

        def walk(stmts):
            for st in stmts:
                if isinstance(st, ast.If):  # `if TYPE_CHECKING:` branch first
                    walk(st.body)
                    walk(st.orelse)
                elif isinstance(st, (ast.ClassDef, ast.FunctionDef)) and st.name == name:
                    found.append((path, st))
                elif isinstance(st, ast.Assign) and any(
                        isinstance(t, ast.Name) and t.id == name for t in st.targets):
                    found.append((path, st.value))
                elif isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name) \
                        and st.target.id == name and st.value is not None:
                    found.append((path, st.value))
                elif isinstance(st, ast.ImportFrom):
                    for a in st.names:
                        if (a.asname or a.name) == name and st.module:
                            mod = st.module
                            if st.level:  # relative import
                                parts = self.module_name(path).split(".")
                                if not path.endswith("__init__.py"):
                                    parts = parts[:-1]
                                parts = parts[: len(parts) - st.level + 1]
                                mod = ".".join(parts + [st.module])
                            target = self.path_of(mod)
                            if target:
                                found.extend(self.definitions(target, a.name))
                            elif self.path_of(f"{mod}.{a.name}"):
                                found.append((self.path_of(f"{mod}.{a.name}"), None))
                elif isinstance(st, ast.Import):
                    for a in st.names:
                        if a.asname == name and self.path_of(a.name):
                            found.append((self.path_of(a.name), None))  # module alias

        walk(self.tree(path).body)
        self._resolving.discard(key)
        return found

    def resolve(self, path: str, node: ast.AST) -> list[tuple[str, ast.AST]]:
        """Definitions a Name / Attribute expression refers to."""
        if isinstance(node, ast.Name):
            return self.definitions(path, node.id)
        if isinstance(node, ast.Attribute):
            for p, target in self.resolve(path, node.value):
                if target is None:  # a module
                    return self.definitions(p, node.attr)
                if isinstance(target, ast.ClassDef):
                    return [(p, target)]
        return []

    def find_class(self, path: str, name: str) -> tuple[str, ast.ClassDef] | None:
        for p, node in self.definitions(path, name):
            if isinstance(node, ast.ClassDef):
                return p, node
        return None

    # ----------------------------------------------------------------- type hints

    def hint_atoms(self, path: str, node: ast.AST, depth: int = 0) -> set:
        """Flatten an annotation into atoms like vLLM's get_type_hints():
        'bool', 'str', 'None', ('Literal', (values...)), ('dataclass', name), 'other'."""
        if node is None or depth > 12:
            return {"other"}
        if isinstance(node, ast.Constant):
            if node.value is None:
                return {"None"}
            if isinstance(node.value, str):  # string annotation
                try:
                    return self.hint_atoms(path, ast.parse(node.value, mode="eval").body, depth + 1)
                except SyntaxError:
                    return {"other"}
            return {"other"}
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            return self.hint_atoms(path, node.left, depth + 1) | self.hint_atoms(path, node.right, depth + 1)
        if isinstance(node, ast.Subscript):
            head = ast.unparse(node.value).split(".")[-1]
            args = node.slice.elts if isinstance(node.slice, ast.Tuple) else [node.slice]
            if head == "Literal":
                return {("Literal", tuple(self.literal_values(path, args, depth)))}
            if head in ("Optional",):
                return self.hint_atoms(path, args[0], depth + 1) | {"None"}
            if head == "Union":
                return set().union(*(self.hint_atoms(path, a, depth + 1) for a in args))
            if head == "Annotated":
                return self.hint_atoms(path, args[0], depth + 1)
            if head == "ClassVar":
                return {"ClassVar"}
            if head in ("list", "tuple", "set"):  # list[Literal[...]] keeps its choices
                inner = set().union(*(self.hint_atoms(path, a, depth + 1) for a in args))
                return {head} | {a for a in inner if isinstance(a, tuple) and a[0] == "Literal"}
            return {head if head in BUILTIN_HINTS else "other"}
        if isinstance(node, (ast.Name, ast.Attribute)):
            name = ast.unparse(node)
            if name in BUILTIN_HINTS:
                return {name}
            atoms_alt = None
            for p, target in self.resolve(path, node):
                if isinstance(target, ast.ClassDef):
                    deco = {ast.unparse(d).split("(")[0].split(".")[-1] for d in target.decorator_list}
                    return {("dataclass", target.name)} if deco & {"config", "dataclass"} else {"other"}
                if target is None or isinstance(target, ast.FunctionDef):
                    continue
                atoms = self.hint_atoms(p, target, depth + 1)
                if any(isinstance(a, tuple) and a[0] == "Literal" for a in atoms):
                    return atoms  # prefer the definition that is a Literal
                atoms_alt = atoms_alt or atoms
            return atoms_alt or {"other"}
        return {"other"}

    def literal_values(self, path: str, args, depth: int) -> list:
        values = []
        for a in args:
            if isinstance(a, ast.Constant):
                values.append(a.value)
            else:  # Literal["auto", RunnerType]: a nested Literal alias
                for atom in self.hint_atoms(path, a, depth + 1):
                    if isinstance(atom, tuple) and atom[0] == "Literal":
                        values.extend(atom[1])
        return values

    def static_values(self, path: str, node: ast.AST, depth: int = 0) -> list | None:
        """Value of a list/tuple/set expression built only from literals and
        module-level names (list + list, set(X), Class.ATTR); None if dynamic."""
        if depth > 12:
            return None
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            out = []
            for e in node.elts:
                if isinstance(e, ast.Constant):
                    out.append(e.value)
                else:
                    return None
            return out
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.BitOr)):
            left = self.static_values(path, node.left, depth + 1)
            right = self.static_values(path, node.right, depth + 1)
            return None if left is None or right is None else left + right
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
                and node.func.id in ("list", "tuple", "set", "frozenset", "sorted") \
                and len(node.args) == 1 and not node.keywords:
            return self.static_values(path, node.args[0], depth + 1)
        if isinstance(node, ast.Name):
            for p, target in self.definitions(path, node.id):
                if target is not None and not isinstance(target, (ast.ClassDef, ast.FunctionDef)):
                    return self.static_values(p, target, depth + 1)
        if isinstance(node, ast.Attribute):  # Class.ATTR
            for p, target in self.resolve(path, node.value):
                if isinstance(target, ast.ClassDef):
                    for st in target.body:
                        if isinstance(st, ast.Assign) and any(
                                isinstance(t, ast.Name) and t.id == node.attr for t in st.targets):
                            return self.static_values(p, st.value, depth + 1)
        return None

    def class_fields(self, path: str, cls: ast.ClassDef) -> dict[str, tuple[str, ast.AST]]:
        """Dataclass fields (bases first): name -> (module path, annotation)."""
        fields: dict[str, tuple[str, ast.AST]] = {}
        for base in cls.bases:
            for p, target in self.resolve(path, base):
                if isinstance(target, ast.ClassDef):
                    fields.update(self.class_fields(p, target))
                    break
        for st in cls.body:
            if isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name):
                if "ClassVar" in ast.unparse(st.annotation):
                    continue
                fields[st.target.id] = (path, st.annotation)
        return fields

    def class_method(self, path: str, cls: ast.ClassDef, name: str):
        for st in cls.body:
            if isinstance(st, ast.FunctionDef) and st.name == name:
                return path, cls, st
        for base in cls.bases:
            for p, target in self.resolve(path, base):
                if isinstance(target, ast.ClassDef):
                    found = self.class_method(p, target, name)
                    if found:
                        return found
        return None


# --------------------------------------------------------------------------- flags

class FlagCollector:
    def __init__(self, src: Source, follow: re.Pattern = FOLLOW_RE):
        self.src = src
        self.follow_re = follow
        self.flags: set[str] = set()
        self.aliases: dict[str, str] = {}
        self.choices: dict[str, list] = {}
        self.seen: set[tuple[str, str]] = set()

    def field_kind(self, path: str, annotation: ast.AST) -> tuple[bool, list | None]:
        """(is BooleanOptionalAction, Literal choices) as vLLM's _compute_kwargs decides."""
        atoms = self.src.hint_atoms(path, annotation)
        literal = [v for a in atoms if isinstance(a, tuple) and a[0] == "Literal" for v in a[1]]
        if any(isinstance(a, tuple) and a[0] == "dataclass" for a in atoms):
            return False, None
        if atoms == {"bool", "str", "None"}:
            return False, literal or None
        return "bool" in atoms, literal or None

    def add(self, names: list[str], is_bool: bool, choices: list | None):
        names = [n for n in names if n.startswith("-")]
        if not names:
            return
        long = next((n for n in names if n.startswith("--")), names[0])
        for n in names:
            self.flags.add(n)
            if n != long:
                self.aliases[n] = long
        if is_bool:
            for n in names:
                if n.startswith("--"):
                    self.flags.add("--no-" + n[2:])
        if choices:
            self.choices[long] = sorted({str(c) for c in choices})

    def run_function(self, path: str, func: ast.FunctionDef, cls: ast.ClassDef | None = None,
                     cls_path: str | None = None):
        key = (path, f"{cls.name if cls else ''}.{func.name}")
        if key in self.seen:
            return
        self.seen.add(key)
        kwargs_vars: dict[str, tuple[str, ast.ClassDef]] = {}  # x_kwargs = get_kwargs(Cls)
        field_vars: dict[str, tuple[str, ast.ClassDef, str]] = {}  # y = x_kwargs["field"]

        for node in ast.walk(func):
            if isinstance(node, ast.Assign) and len(node.targets) == 1 \
                    and isinstance(node.targets[0], ast.Name):
                var, val = node.targets[0].id, node.value
                if isinstance(val, ast.Call) and ast.unparse(val.func).endswith("get_kwargs") \
                        and val.args and isinstance(val.args[0], ast.Name):
                    found = self.src.find_class(path, val.args[0].id)
                    if found:
                        kwargs_vars[var] = found
                elif isinstance(val, ast.Subscript) and isinstance(val.value, ast.Name) \
                        and val.value.id in kwargs_vars and isinstance(val.slice, ast.Constant):
                    field_vars[var] = (*kwargs_vars[val.value.id], val.slice.value)

        # Frontend classes: one flag per dataclass field, f"--{key.replace('_', '-')}"
        derives_from_fields = any(
            isinstance(a, ast.JoinedStr) and a.values and isinstance(a.values[0], ast.Constant)
            and str(a.values[0].value) == "--"
            for n in ast.walk(func) if isinstance(n, ast.Call)
            and ast.unparse(n.func).endswith(".add_argument") for a in n.args)
        if derives_from_fields and cls is not None:
            extra = self.extra_flags(cls_path, cls)
            for name, (fpath, ann) in self.src.class_fields(cls_path, cls).items():
                is_bool, choices = self.field_kind(fpath, ann)
                self.add(extra.get(name, []) + [f"--{name.replace('_', '-')}"], is_bool, choices)

        for node in ast.walk(func):
            if not isinstance(node, ast.Call):
                continue
            fname = ast.unparse(node.func)
            if fname.endswith(".add_argument"):
                self.add_argument_call(path, node, kwargs_vars, field_vars)
            elif self.follow_re.match(fname.split(".")[-1]):
                self.follow(path, node, cls, cls_path)

    def extra_flags(self, path: str, cls: ast.ClassDef) -> dict[str, list[str]]:
        """kwargs["field"]["flags"] = ["-i"] assignments in the class and its bases."""
        out: dict[str, list[str]] = {}
        chain = [(path, cls)]
        while chain:
            p, c = chain.pop()
            for node in ast.walk(c):
                if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Subscript):
                    t = node.targets[0]
                    if isinstance(t.slice, ast.Constant) and t.slice.value == "flags" \
                            and isinstance(t.value, ast.Subscript) \
                            and isinstance(t.value.slice, ast.Constant) \
                            and isinstance(node.value, ast.List):
                        out[t.value.slice.value] = [e.value for e in node.value.elts
                                                    if isinstance(e, ast.Constant)]
            for base in c.bases:
                chain += [(bp, b) for bp, b in self.src.resolve(p, base) if isinstance(b, ast.ClassDef)]
        return out

    def add_argument_call(self, path, call: ast.Call, kwargs_vars, field_vars):
        names = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        is_bool, choices = False, None
        for kw in call.keywords:
            if kw.arg == "action" and "BooleanOptionalAction" in ast.unparse(kw.value):
                is_bool = True
            elif kw.arg == "choices":  # left out where not statically known
                choices = self.src.static_values(path, kw.value)
            elif kw.arg is None:  # **x_kwargs["field"], **{**x_kwargs["field"], ...}, **var
                for n in ast.walk(kw.value):
                    ref = None
                    if isinstance(n, ast.Subscript) and isinstance(n.value, ast.Name) \
                            and n.value.id in kwargs_vars and isinstance(n.slice, ast.Constant):
                        ref = (*kwargs_vars[n.value.id], n.slice.value)
                    elif isinstance(n, ast.Name) and n.id in field_vars:
                        ref = field_vars[n.id]
                    if ref:
                        cpath, cls, field = ref
                        fields = self.src.class_fields(cpath, cls)
                        if field not in fields:
                            raise SystemExit(f"{path}:{call.lineno}: {cls.name} has no field {field}")
                        b, c = self.field_kind(*fields[field])
                        is_bool, choices = is_bool or b, choices or c
                        break
        self.add(names, is_bool, choices)

    def follow(self, path: str, call: ast.Call, cls, cls_path):
        """Go into make_arg_parser(...), Cls.add_cli_args(...), super().add_cli_args(...)."""
        func = call.func
        if isinstance(func, ast.Name):
            for p, target in self.src.definitions(path, func.id):
                if isinstance(target, ast.FunctionDef):
                    self.run_function(p, target)
                    return
        elif isinstance(func, ast.Attribute):
            owner = func.value
            if isinstance(owner, ast.Call) and ast.unparse(owner.func) == "super" and cls is not None:
                for base in cls.bases:
                    for bp, b in self.src.resolve(cls_path, base):
                        if isinstance(b, ast.ClassDef):
                            found = self.src.class_method(bp, b, func.attr)
                            if found:
                                self.run_function(found[0], found[2], found[1], found[0])
                return
            if isinstance(owner, ast.Name) and owner.id == "cls" and cls is not None:
                targets = [(cls_path, cls)]
            else:
                targets = [(p, t) for p, t in self.src.resolve(path, owner) if isinstance(t, ast.ClassDef)]
            for p, target in targets:
                found = self.src.class_method(p, target, func.attr)
                if found:
                    # fields come from the class it was called on, the method maybe from a base
                    self.run_function(found[0], found[2], target, p)
                    return


def _collect_cli(src: Source, module: str, method: str, follow: re.Pattern = FOLLOW_RE) -> FlagCollector:
    """The flags every class of ``module`` adds in ``method``, following the calls ``follow`` allows."""
    fc = FlagCollector(src, follow)
    for cls in (n for n in src.tree(module).body if isinstance(n, ast.ClassDef)):
        m = src.class_method(module, cls, method)
        if m:
            fc.run_function(module, m[2], cls, module)
    if not fc.flags:
        raise SystemExit(f"{module}: found no flags; the CLI layout changed")
    return fc


def collect_flags(src: Source) -> FlagCollector:
    """The flags of `vllm serve`: its subcommand's subparser_init and what it calls."""
    return _collect_cli(src, SERVE, "subparser_init")


def collect_bench_flags(src: Source) -> FlagCollector:
    """The flags of `vllm bench serve`: BenchmarkServingSubcommand.add_cli_args and what it calls."""
    return _collect_cli(src, BENCH_SERVE, "add_cli_args", BENCH_FOLLOW_RE)


# --------------------------------------------------------------------------- env, metrics

def collect_env(src: Source) -> list[str]:
    for node in src.tree(ENVS).body:
        target = node.targets[0] if isinstance(node, ast.Assign) else getattr(node, "target", None)
        if isinstance(target, ast.Name) and target.id == "environment_variables" \
                and isinstance(node.value, ast.Dict):
            return sorted(k.value for k in node.value.keys if isinstance(k, ast.Constant))
    raise SystemExit(f"{ENVS}: no environment_variables dict")


def package_trees(src: Source, *needles: str):
    """Parsed package modules whose text contains one of needles (src.exclude left out)."""
    for path in sorted(src.files):
        if path.startswith(f"{src.package}/") and path.endswith(".py") \
                and not path.startswith(src.exclude) \
                and any(n in src.files[path] for n in needles):
            try:
                tree = ast.parse(src.files[path], path)
            except SyntaxError:
                continue
            yield path, tree


ENV_READ_RE = re.compile(
    r"""(?:\b(?:os\.)?getenv|\benviron\.get|\benviron\.setdefault)\(\s*["']([A-Z_][A-Z0-9_]*)["']"""
    r"""|\benviron\[\s*["']([A-Z_][A-Z0-9_]*)["']\s*\]""")


def collect_env_other(src: Source) -> set[str]:
    """Names read with os.getenv / os.environ.get / os.environ[...] (text scan, for speed)."""
    names: set[str] = set()
    for path, text in src.files.items():
        if path.startswith(f"{src.package}/") and path.endswith(".py") and not path.startswith(src.exclude):
            for m in ENV_READ_RE.finditer(text):
                names.add(m.group(1) or m.group(2))
    return names


def collect_metrics(src: Source, metric_re: re.Pattern) -> tuple[list[str], dict[str, str], set[str]]:
    names: set[str] = set()
    types: dict[str, str] = {}
    files: set[str] = set()
    for path, tree in package_trees(src, metric_re.pattern[1:].split(":")[0] + ":"):
        parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Constant) and isinstance(node.value, str)
                    and metric_re.match(node.value)):
                continue
            parent = parents.get(node)
            if isinstance(parent, ast.Call) and ast.unparse(parent.func).endswith(("startswith", "endswith")):
                continue
            if isinstance(parent, ast.Compare):
                continue  # a comparison reads a metric, it does not define one
            names.add(node.value)
            files.add(path)
            p = parent
            while p is not None and not isinstance(p, ast.Call):
                p = parents.get(p)
            if p is not None:
                fname = ast.unparse(p.func).lower()
                kind = next((k for k in ("counter", "gauge", "histogram", "summary") if k in fname), None)
                if kind:
                    types[node.value] = kind
    return sorted(names), dict(sorted(types.items())), files


def collect_image(src: Source) -> dict:
    dockerfile = src.files.get("docker/Dockerfile")
    if dockerfile is None:
        return {}
    out = {}
    for key in ("CUDA_VERSION", "PYTHON_VERSION", "UBUNTU_VERSION", "FINAL_BASE_IMAGE"):
        m = re.search(rf"^ARG {key}=(\S+)", dockerfile, re.M)
        if m:
            out[key] = m.group(1)
    ray = {}
    for req in ("requirements/common.txt", "requirements/cuda.txt"):
        if req in src.files:
            ray[req] = [line.strip() for line in src.files[req].splitlines()
                        if re.match(r"\s*ray\b", line)]
    out["ray_requirements"] = ray
    src.used.update(k for k in ("docker/Dockerfile", *ray) if k in src.files)
    return out


def fetch_files(engine, version, archive, source_url, log):
    """(files, url, sha256) of a release: the given sdist/wheel, or the one downloaded from PyPI."""
    with tempfile.TemporaryDirectory(prefix=f"{engine}-contract-") as tmp:
        if archive:
            path = Path(archive)
            url = source_url or f"file:{path.name}"
            sha = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            path, url, sha = download(engine, version, Path(tmp), log)
        return read_archive(path), url, sha


# --------------------------------------------------------------------------- main

def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--version", default=DEFAULT_VERSION, help="vLLM release on PyPI")
    ap.add_argument("--archive", help="use this sdist/wheel instead of downloading")
    ap.add_argument("--source-url", help="where --archive came from")
    ap.add_argument("--out", help="output path (default: next to this script)")
    ap.add_argument("--expect", action="append", default=[], metavar="FLAG",
                    help="exit 1 if FLAG is not in the result (repeatable; --expect=--port)")
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr)

    files, url, sha = fetch_files(ENGINE, args.version, args.archive, args.source_url, log)

    src = Source(files, ENGINE, exclude=("vllm/benchmarks/",))
    fc = collect_flags(src)
    env = collect_env(src)
    metrics, metric_types, metric_files = collect_metrics(src, METRIC_RE)
    image = collect_image(src)
    bench = collect_bench_flags(src)
    contract = {
        "engine": ENGINE,
        "version": args.version,
        "source": {"url": url, "sha256": sha,
                   "files": sorted(src.used | metric_files)},
        "flags": sorted(fc.flags),
        "flag_aliases": dict(sorted(fc.aliases.items())),
        "flag_choices": dict(sorted(fc.choices.items())),
        "env": env,
        "env_other": sorted(collect_env_other(src) - set(env)),
        "metrics": metrics,
        "metric_types": metric_types,
        "image": image,
        "bench_serve_flags": sorted(bench.flags),
        "bench_serve_flag_choices": dict(sorted(bench.choices.items())),
    }
    out = Path(args.out) if args.out else HERE / f"{ENGINE}-{args.version}.json"
    out.write_text(json.dumps(contract, indent=2) + "\n")
    log(f"wrote {out}: {len(contract['flags'])} flags, {len(env)} env vars, "
        f"{len(metrics)} metrics")
    missing = [f for f in args.expect if f not in fc.flags]
    for f in missing:
        print(f"missing flag: {f}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
