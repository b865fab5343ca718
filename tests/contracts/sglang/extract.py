#!/usr/bin/env python3
"""Extract the upstream contract of an SGLang release from its own source.

Same approach and output schema as ../vllm/extract.py, whose download and
``ast`` helpers this script loads: the release comes from PyPI (the sdist, or
a wheel where there is none - SGLang publishes wheels only since 0.5.11),
sha256-checked, read statically. Writes ``sglang-<ver>.json`` next to this
script:

    {engine, version, source {url, sha256, files}, flags, flag_aliases,
     flag_choices, env, env_other, metrics, metric_types, routes}

* ``flags``: what ``python -m sglang.launch_server`` / ``sglang serve``
  accept: ``ServerArgs.add_cli_args`` in sglang/srt/server_args.py registers
  one flag per field of the namespace classes in ``_INPUT_NAMESPACES``
  declared as ``A[T, "help"]`` or ``A[T, Arg(...)]`` (``--field-name`` or
  ``Arg.cli_name``, plus ``Arg.aliases``; ``no_cli=True`` skipped), the way
  ``arg_groups/arg_utils.add_cli_args_from_dataclass`` does, then a few by
  hand (dynamic choices, deprecated spellings, ``--config``). Plain ``bool``
  fields are ``store_true`` (no ``--no-`` form); fields with
  ``action=argparse.BooleanOptionalAction`` get one.
* ``flag_choices``: ``Arg.choices`` or the field's ``Literal`` values where
  they are static (literals, module-level lists, ``Class.ATTR``); choices
  computed at run time (parsers, plugins) are left out.
* ``env``: the ``Env*`` descriptors of ``class Envs`` in sglang/srt/environ.py
  (the attribute name is the variable) and their ``deprecated_name`` aliases.
* ``routes``: the HTTP paths the server answers (``@app.get(...)`` and friends in
  sglang/srt/entrypoints/http_server.py, ``Mount(...)`` apps such as ``/metrics``);
  the probes and the metrics path must be among them.
* ``metrics``: every ``sglang:<name>`` string literal in the package outside
  the test packages, sglang/benchmark and sglang/bench_*.

Standard library only. ``--version`` defaults to the newest release when
this was written; ``--latest`` asks PyPI for the newest non-prerelease.
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("vllm_contract", HERE.parent / "vllm" / "extract.py")
vc = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(vc)

ENGINE = "sglang"
DEFAULT_VERSION = "0.5.23"  # newest non-prerelease on PyPI (2026-10-30) when this was written
SERVER_ARGS = "sglang/srt/server_args.py"
ENVIRON = "sglang/srt/environ.py"
METRIC_RE = re.compile(r"^sglang:[A-Za-z_][A-Za-z0-9_]*$")
EXCLUDE = ("sglang/test/", "sglang/multimodal_gen/test/", "sglang/benchmark/", "sglang/bench_")


def latest_version(log) -> str:
    meta = json.loads(vc._get(f"https://pypi.org/pypi/{ENGINE}/json"))
    final = [v for v, files in meta["releases"].items()
             if files and re.fullmatch(r"\d+(\.\d+)*(\.post\d+)?", v)
             and not all(f.get("yanked") for f in files)]
    best = max(final, key=lambda v: [int(x) for x in re.findall(r"\d+", v)])
    log(f"pypi: newest non-prerelease {ENGINE} is {best}")
    return best


def arg_meta(src, path: str, annotation: ast.AST):
    """(inner type node, {keyword: node}) of A[T, "help"] / A[T, Arg(...)], else None."""
    if not (isinstance(annotation, ast.Subscript)
            and ast.unparse(annotation.value).split(".")[-1] in ("A", "Annotated")):
        return None
    parts = annotation.slice.elts if isinstance(annotation.slice, ast.Tuple) else [annotation.slice]
    for meta in parts[1:]:
        if isinstance(meta, ast.Constant) and isinstance(meta.value, str):
            return parts[0], {}
        if isinstance(meta, ast.Call) and ast.unparse(meta.func).split(".")[-1] == "Arg":
            return parts[0], {kw.arg: kw.value for kw in meta.keywords if kw.arg}
    return None


def collect_flags(src) -> "vc.FlagCollector":
    fc = vc.FlagCollector(src)
    tree = src.tree(SERVER_ARGS)
    namespaces = None
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name) and t.id == "_INPUT_NAMESPACES" for t in node.targets):
            namespaces = [e.id for e in node.value.elts if isinstance(e, ast.Name)]
    if not namespaces:
        raise SystemExit(f"{SERVER_ARGS}: no _INPUT_NAMESPACES list; the layout changed")
    classes = [src.find_class(SERVER_ARGS, name) for name in namespaces]
    server_args = src.find_class(SERVER_ARGS, "ServerArgs")
    for path, cls in [c for c in classes if c] + [server_args]:
        for st in cls.body:
            if not (isinstance(st, ast.AnnAssign) and isinstance(st.target, ast.Name)):
                continue
            found = arg_meta(src, path, st.annotation)
            if found is None:
                continue  # no Arg metadata: not a CLI input
            inner, kw = found
            if isinstance(kw.get("no_cli"), ast.Constant) and kw["no_cli"].value is True:
                continue
            name = st.target.id
            cli = kw["cli_name"].value if isinstance(kw.get("cli_name"), ast.Constant) \
                else f"--{name.replace('_', '-')}"
            aliases = src.static_values(path, kw["aliases"]) if "aliases" in kw else []
            is_bool = "BooleanOptionalAction" in ast.unparse(kw.get("action", ast.Constant(None)))
            choices = src.static_values(path, kw["choices"]) if "choices" in kw else None
            if choices is None and "choices" not in kw and "action" not in kw:
                atoms = src.hint_atoms(path, inner)
                if "list" not in atoms:  # only a scalar Literal becomes choices there
                    choices = [v for a in atoms if isinstance(a, tuple) and a[0] == "Literal"
                               for v in a[1]] or None
            fc.add([cli] + list(aliases or []), is_bool, choices)
    # the ones ServerArgs.add_cli_args registers by hand
    method = src.class_method(*server_args, "add_cli_args")
    for node in ast.walk(method[2]):
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith(".add_argument"):
            fc.add_argument_call(SERVER_ARGS, node, {}, {})
    return fc


def collect_env(src) -> list[str]:
    path, envs = src.find_class(ENVIRON, "Envs")
    names = set()
    for st in envs.body:
        if isinstance(st, ast.Assign) and isinstance(st.value, ast.Call) \
                and ast.unparse(st.value.func).startswith("Env"):
            names.update(t.id for t in st.targets if isinstance(t, ast.Name))
            names.update(kw.value.value for kw in st.value.keywords
                         if kw.arg == "deprecated_name" and isinstance(kw.value, ast.Constant))
    if not names:
        raise SystemExit(f"{ENVIRON}: no Env* fields in class Envs")
    return sorted(names)


HTTP_SERVER = "sglang/srt/entrypoints/http_server.py"
ROUTE_METHODS = {"get", "post", "put", "delete", "api_route"}


def collect_routes(src) -> list[str]:
    """HTTP paths the server serves: ``@app.<method>("<path>")`` in the HTTP server, plus the
    ``Mount("<path>", ...)`` apps (``/metrics`` with ``--enable-metrics``) in sglang/srt/utils."""
    routes = set()
    for path in [HTTP_SERVER] + sorted(p for p in src.files if p.startswith("sglang/srt/utils/") and p.endswith(".py")):
        if path not in src.files:
            continue
        tree = src.tree(path) if path == HTTP_SERVER else ast.parse(src.files[path], path)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            first = node.args[0]
            if not (isinstance(first, ast.Constant) and isinstance(first.value, str) and first.value.startswith("/")):
                continue
            func = node.func
            if path == HTTP_SERVER and isinstance(func, ast.Attribute) and func.attr in ROUTE_METHODS \
                    and isinstance(func.value, ast.Name) and func.value.id == "app":
                routes.add(first.value)
            elif isinstance(func, ast.Name) and func.id == "Mount":
                routes.add(first.value)
                src.used.add(path)
    return sorted(routes)


# The start-up lines verify reads (module_utils/deploy/engines/engine_log.py): where they are logged, and a marker each holds.
LOG_LINES = {
    "load_weight_end": ("sglang/srt/model_executor/model_runner.py", "Load weight end. "),
    "kv_cache_allocated": ("sglang/srt/mem_cache/memory_pool.py", "#tokens: "),
    "max_total_num_tokens": ("sglang/srt/managers/scheduler.py", "max_total_num_tokens="),
}


def _render_fstring(node: ast.JoinedStr) -> str:
    """An f-string as its literal text with each placeholder written ``{<expression>}``."""
    parts = []
    for value in node.values:
        if isinstance(value, ast.Constant):
            parts.append(str(value.value))
        else:
            spec = ""
            if value.format_spec is not None:
                spec = ":" + "".join(str(v.value) for v in value.format_spec.values if isinstance(v, ast.Constant))
            parts.append("{" + ast.unparse(value.value) + spec + "}")
    return "".join(parts)


def collect_log_lines(src) -> dict[str, list[str]]:
    """The f-strings of the ``logger.info`` calls that write the start-up lines verify parses, by LOG_LINES key."""
    lines = {}
    for key, (path, marker) in LOG_LINES.items():
        if path not in src.files:
            continue
        found = []
        for node in ast.walk(src.tree(path)):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "info"
                    and node.args and isinstance(node.args[0], ast.JoinedStr)):
                continue
            text = _render_fstring(node.args[0])
            if marker in text:
                found.append(text)
        if found:
            lines[key] = sorted(set(found))
    return lines


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--version", default=DEFAULT_VERSION, help="SGLang release on PyPI")
    ap.add_argument("--latest", action="store_true", help="use PyPI's newest non-prerelease")
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

    version = latest_version(log) if args.latest else args.version
    files, url, sha = vc.fetch_files(ENGINE, version, args.archive, args.source_url, log)
    # an sdist has the package under python/; a wheel at the top
    files = {k.removeprefix("python/"): v for k, v in files.items()}

    src = vc.Source(files, ENGINE, exclude=EXCLUDE)
    fc = collect_flags(src)
    env = collect_env(src)
    metrics, metric_types, metric_files = vc.collect_metrics(src, METRIC_RE)
    contract = {
        "engine": ENGINE,
        "version": version,
        "source": {"url": url, "sha256": sha, "files": sorted(src.used | metric_files)},
        "flags": sorted(fc.flags),
        "flag_aliases": dict(sorted(fc.aliases.items())),
        "flag_choices": dict(sorted(fc.choices.items())),
        "env": env,
        "env_other": sorted(vc.collect_env_other(src) - set(env)),
        "metrics": metrics,
        "metric_types": metric_types,
        "routes": collect_routes(src),
        "log_lines": collect_log_lines(src),
    }
    out = Path(args.out) if args.out else HERE / f"{ENGINE}-{version}.json"
    out.write_text(json.dumps(contract, indent=2) + "\n")
    log(f"wrote {out}: {len(contract['flags'])} flags, {len(env)} env vars, {len(metrics)} metrics")
    missing = [f for f in args.expect if f not in fc.flags]
    for f in missing:
        print(f"missing flag: {f}")
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
