#!/usr/bin/env python3
"""Extract the environment variables huggingface_hub reads, from a release's wheel on PyPI.

    python tests/contracts/huggingface_hub/extract.py --version 2.4.0

Writes huggingface_hub-<version>.json beside this script: every name passed to os.environ.get,
os.getenv or os.environ[...] in the package's modules (static: nothing is imported).
"""

import argparse
import ast
import hashlib
import io
import json
import pathlib
import urllib.parse
import urllib.request
import zipfile

HERE = pathlib.Path(__file__).resolve().parent


def wheel(version):
    # The project document lists every release's files (the per-version document is not always served).
    with urllib.request.urlopen("https://pypi.org/pypi/huggingface-hub/json", timeout=60) as response:
        project = json.load(response)
    (entry,) = [item for item in project["releases"][version] if item["packagetype"] == "bdist_wheel"]
    # A mirror may answer with links relative to the document.
    url = urllib.parse.urljoin("https://pypi.org/pypi/huggingface-hub/json", entry["url"])
    with urllib.request.urlopen(url, timeout=120) as response:
        data = response.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != entry["digests"]["sha256"]:
        raise SystemExit("sha256 mismatch for %s" % url)
    return url, digest, zipfile.ZipFile(io.BytesIO(data))


def _is_environ(node):
    return isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name) and node.value.id == "os"


def env_names(source):
    names = set()
    for node in ast.walk(ast.parse(source)):
        key = None
        if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in ("get", "pop") and _is_environ(func.value):
                key = node.args[0].value
            elif isinstance(func, ast.Attribute) and func.attr == "getenv" and isinstance(func.value, ast.Name) and func.value.id == "os":
                key = node.args[0].value
        elif isinstance(node, ast.Subscript) and _is_environ(node.value) and isinstance(node.slice, ast.Constant):
            key = node.slice.value
        if isinstance(key, str):
            names.add(key)
    return names


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", default="2.4.0")
    args = parser.parse_args()
    url, digest, archive = wheel(args.version)
    files, names = [], set()
    for name in sorted(archive.namelist()):
        if name.startswith("huggingface_hub/") and name.endswith(".py"):
            found = env_names(archive.read(name).decode("utf-8"))
            if found:
                files.append(name)
                names |= found
    out = HERE / ("huggingface_hub-%s.json" % args.version)
    out.write_text(json.dumps({
        "package": "huggingface_hub", "version": args.version,
        "source": {"url": url, "sha256": digest, "files": files},
        "env": sorted(names),
    }, indent=1) + "\n")
    print("%s: %d environment variables from %d files" % (out, len(names), len(files)))


if __name__ == "__main__":
    main()
