#!/usr/bin/env python3
"""Extract the upstream values contract of NVIDIA's gpu-operator Helm chart.

Fetches ``deployments/gpu-operator/values.yaml`` of NVIDIA/gpu-operator at a
pinned tag and flattens it into dotted keys, written as
``gpu-operator-<tag>.json`` next to this script:

    {chart, version, source {url, sha256, file, ...}, keys [...], defaults {...}}

* ``keys``: every map key as a dotted path, intermediate maps included
  (``dcgmExporter``, ``dcgmExporter.serviceMonitor``,
  ``dcgmExporter.serviceMonitor.enabled``); lists are leaves (``toolkit.env``)
  and are not recursed into.
* ``defaults``: the value of every scalar leaf (str/int/float/bool/null).
  Lists and empty maps are keys without a default entry.
* ``source.sha256``: sha256 of the values.yaml bytes themselves, so the
  result is the same whichever way the file was obtained; an archive's own
  hash, where one was downloaded, is in ``source.archive_sha256``.

Where the file comes from, first that works:

1. the Go module proxy ($GOPROXY, default https://proxy.golang.org): the
   module zip of github.com/NVIDIA/gpu-operator at ``<tag>+incompatible``,
   ``<tag>`` and the pseudo-version of the tag's commit. The repository has a
   go.mod without a /v26 suffix, so Go treats the v2x.y.z tags as invalid
   versions and only the pseudo-version is normally served; a mirror that
   only caches some versions may refuse all of them.
2. GitHub (raw file at the tag), where github.com is reachable.
3. ``--git-dir PATH``: a local clone/mirror that has the tag; the tag must
   resolve to TAG_COMMITS[tag] when that is known.
4. ``--values-file PATH``: a copy of the file obtained by hand (give
   ``--source-url`` to record where it came from).

``--compare FILE`` checks a (subset) values file, e.g. the test stand-in
chart's, against the contract: unknown keys and differing defaults are
reported and make the exit status 1.

Needs PyYAML (the project .venv has it). Standard library otherwise.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import hashlib
import io
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import yaml

MODULE = "github.com/NVIDIA/gpu-operator"
REPO = "NVIDIA/gpu-operator"
CHART = "gpu-operator"
VALUES_PATH = "deployments/gpu-operator/values.yaml"
DEFAULT_TAG = "v26.7.0"

# Commit each pinned tag points at (peeled), with its committer time in UTC,
# as seen in a snapshot of github.com/NVIDIA/gpu-operator. Used to build the
# Go pseudo-version and to check a --git-dir checkout.
TAG_COMMITS = {
    "v26.7.0": ("10ee5b3638b89e11e949412aafa5ba99279c3721", "20260821000907"),
}

HERE = Path(__file__).resolve().parent
TIMEOUT = 120


def _escape_module(path: str) -> str:
    """Go module proxy case-encoding: uppercase letters become !lowercase."""
    return "".join("!" + c.lower() if c.isupper() else c for c in path)


def _get(url: str) -> bytes:
    req = urllib.request.Request(url, headers={"User-Agent": "gpuinfer-contract-extract"})
    with urllib.request.urlopen(req, timeout=TIMEOUT) as resp:
        return resp.read()


def _proxy_versions(tag: str) -> list[str]:
    versions = [f"{tag}+incompatible", tag]
    if tag in TAG_COMMITS:
        sha, stamp = TAG_COMMITS[tag]
        versions.append(f"v0.0.0-{stamp}-{sha[:12]}")
    return versions


def from_go_proxy(tag: str, log) -> dict | None:
    proxies = os.environ.get("GOPROXY", "https://proxy.golang.org").split(",")
    for proxy in proxies:
        proxy = proxy.strip().split("|")[0].rstrip("/")
        if not proxy.startswith("http"):
            continue  # "direct" / "off"
        for version in _proxy_versions(tag):
            url = f"{proxy}/{_escape_module(MODULE)}/@v/{version}.zip"
            try:
                blob = _get(url)
            except (urllib.error.URLError, OSError) as exc:
                log(f"go proxy: {url}: {exc}")
                continue
            with zipfile.ZipFile(io.BytesIO(blob)) as zf:
                member = f"{MODULE}@{version}/{VALUES_PATH}"
                try:
                    data = zf.read(member)
                except KeyError:
                    log(f"go proxy: {url}: no {member} in the zip")
                    continue
            return {
                "method": "go-module-proxy",
                "url": url,
                "module_version": version,
                "archive_sha256": hashlib.sha256(blob).hexdigest(),
                "data": data,
            }
    return None


def from_github(tag: str, log) -> dict | None:
    url = f"https://raw.githubusercontent.com/{REPO}/{tag}/{VALUES_PATH}"
    try:
        data = _get(url)
    except (urllib.error.URLError, OSError) as exc:
        log(f"github: {url}: {exc}")
        return None
    return {"method": "github-raw", "url": url, "data": data}


def from_git_dir(tag: str, git_dir: str, log) -> dict | None:
    def git(*args: str) -> bytes:
        return subprocess.run(["git", "--git-dir", git_dir, *args], check=True, capture_output=True).stdout

    try:
        commit = git("rev-parse", f"refs/tags/{tag}^{{commit}}").decode().strip()
    except subprocess.CalledProcessError as exc:
        log(f"git: {git_dir}: tag {tag} not found: {exc.stderr.decode().strip()}")
        return None
    expected = TAG_COMMITS.get(tag, (None,))[0]
    if expected and commit != expected:
        raise SystemExit(f"git: tag {tag} in {git_dir} is {commit}, expected {expected}")
    data = git("show", f"{commit}:{VALUES_PATH}")
    return {
        "method": "git",
        "url": f"https://github.com/{REPO}/blob/{tag}/{VALUES_PATH}",
        "commit": commit,
        "data": data,
    }


def flatten(node, prefix: str = "", keys: set | None = None, defaults: dict | None = None):
    """Dotted keys of every map entry (maps recursed, lists are leaves)."""
    keys = set() if keys is None else keys
    defaults = {} if defaults is None else defaults
    if isinstance(node, dict):
        for k, v in node.items():
            path = f"{prefix}.{k}" if prefix else str(k)
            keys.add(path)
            if isinstance(v, dict):
                flatten(v, path, keys, defaults)
            elif not isinstance(v, list):
                defaults[path] = _jsonable(v)
    return keys, defaults


def _jsonable(v):
    if v is None or isinstance(v, (str, bool, int, float)):
        return v
    if isinstance(v, (_dt.date, _dt.datetime)):
        return v.isoformat()
    return str(v)


def compare(contract: dict, path: Path) -> list[str]:
    sub = yaml.safe_load(path.read_text()) or {}
    keys, defaults = flatten(sub)
    known = set(contract["keys"])
    problems = [f"unknown key: {k}" for k in sorted(keys - known)]
    for k, v in sorted(defaults.items()):
        if k in contract["defaults"] and contract["defaults"][k] != v:
            problems.append(f"default differs: {k}: {v!r} here, {contract['defaults'][k]!r} upstream")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tag", default=DEFAULT_TAG)
    ap.add_argument("--git-dir", help="local git dir with the tag (fallback)")
    ap.add_argument("--values-file", help="values.yaml obtained by hand (last resort)")
    ap.add_argument("--source-url", help="where --values-file came from")
    ap.add_argument("--no-network", action="store_true", help="skip the proxy and GitHub")
    ap.add_argument("--out", help="output path (default: next to this script)")
    ap.add_argument(
        "--compare", action="append", default=[], metavar="FILE", help="check a subset values file against the result"
    )
    ap.add_argument("-q", "--quiet", action="store_true")
    args = ap.parse_args(argv)

    def log(msg: str) -> None:
        if not args.quiet:
            print(msg, file=sys.stderr)

    src = None
    if not args.no_network:
        src = from_go_proxy(args.tag, log) or from_github(args.tag, log)
    if src is None and args.git_dir:
        src = from_git_dir(args.tag, args.git_dir, log)
    if src is None and args.values_file:
        src = {
            "method": "file",
            "url": args.source_url or f"https://github.com/{REPO}/blob/{args.tag}/{VALUES_PATH}",
            "data": Path(args.values_file).read_bytes(),
        }
    if src is None:
        log("no source worked; try --git-dir or --values-file")
        return 2

    data = src.pop("data")
    values = yaml.safe_load(data)
    keys, defaults = flatten(values)
    contract = {
        "chart": CHART,
        "version": args.tag,
        "source": {
            "url": src.pop("url"),
            "sha256": hashlib.sha256(data).hexdigest(),
            "file": VALUES_PATH,
            **src,
        },
        "keys": sorted(keys),
        "defaults": dict(sorted(defaults.items())),
    }
    out = Path(args.out) if args.out else HERE / f"{CHART}-{args.tag}.json"
    out.write_text(json.dumps(contract, indent=2) + "\n")
    log(
        f"wrote {out}: {len(contract['keys'])} keys, {len(contract['defaults'])} defaults "
        f"({contract['source']['method']})"
    )

    rc = 0
    for path in args.compare:
        problems = compare(contract, Path(path))
        for p in problems:
            print(f"{path}: {p}")
        if problems:
            rc = 1
        else:
            log(f"{path}: all keys and defaults match {args.tag}")
    return rc


if __name__ == "__main__":
    sys.exit(main())
