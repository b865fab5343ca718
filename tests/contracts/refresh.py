#!/usr/bin/env python3
"""Refresh every upstream contract for the versions the roles pin now.

    .venv/bin/python tests/contracts/refresh.py            # all machine-extractable contracts
    .venv/bin/python tests/contracts/refresh.py vllm       # one of: vllm, sglang, gpu_operator, huggingface_hub

After bumping a pin (vllm_image_tag, gpu_operator_chart_version, ...), run this, then `make unit`:
the render tests name every flag, variable, metric or values key the new release no longer has.
The NIM contract is gathered by hand from NVIDIA's docs (tests/contracts/nim/README.md).
"""

import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from tests.contracts import check  # noqa: E402

# SGLang is not pinned by a role yet: the release its contract was taken from.
SGLANG_VERSION = "0.5.23"


def commands():
    pinned = check.pinned_versions()
    return {
        "vllm": [HERE / "vllm" / "extract.py", "--version", pinned["vllm"]],
        "sglang": [HERE / "sglang" / "extract.py", "--version", SGLANG_VERSION],
        "gpu_operator": [HERE / "gpu_operator" / "extract.py", "--tag", pinned["gpu_operator"]],
        "huggingface_hub": [HERE / "huggingface_hub" / "extract.py", "--version", check.HUGGINGFACE_HUB],
    }


def main(names):
    todo = commands()
    unknown = [name for name in names if name not in todo]
    if unknown:
        raise SystemExit("unknown contract(s) %s; choose from %s" % (", ".join(unknown), ", ".join(sorted(todo))))
    failed = []
    for name in names or sorted(todo):
        print("== %s" % name, flush=True)
        if subprocess.call([sys.executable] + [str(part) for part in todo[name]]) != 0:
            failed.append(name)
    if failed:
        raise SystemExit("could not refresh: %s" % ", ".join(failed))


if __name__ == "__main__":
    main(sys.argv[1:])
