#!/usr/bin/env python3
"""Refresh the upstream contracts: for the versions the roles pin, or (``--latest``) for the newest releases.

    .venv/bin/python tests/contracts/refresh.py            # all machine-extractable contracts, pinned versions
    .venv/bin/python tests/contracts/refresh.py vllm       # one of: vllm, sglang, gpu_operator, huggingface_hub
    .venv/bin/python tests/contracts/refresh.py --latest   # drift report (make contracts-refresh)

After bumping a pin (vllm_image_tag, gpu_operator_chart_version, ...), run it without --latest, then `make unit`:
the render tests name every flag, variable, metric or values key the new release no longer has.
The NIM contract is gathered by hand from NVIDIA's docs (tests/contracts/nim/README.md).

``--latest`` asks PyPI (vLLM, SGLang, huggingface_hub) and NVIDIA's Helm repository or GitHub (the GPU Operator
chart) for the newest release, extracts its contract next to the pinned one (``vllm-<newest>.json``, and for vLLM
``memory-accounting-<newest>.json``), renders every scenario in inventories/ (site.yml and benchmark.yml in render
mode, as `make demo` does) and prints, per upstream, what the newest release added, removed or changed among the
flags, variables, metric names and values keys the rendered manifests hold. It uses the checks the render tests use
(check.py): what they would report after a bump is what it lists as removed. Nothing is changed in the roles; the
exit status is 1 when an upstream could not be reached or a contract not extracted.
"""

import argparse
import json
import os
import pathlib
import re
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request

import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from tests.contracts import check  # noqa: E402

# SGLang is not pinned by a role yet: the release its contract was taken from.
SGLANG_VERSION = "0.5.23"
UPSTREAMS = ("vllm", "sglang", "gpu_operator", "huggingface_hub")
TIMEOUT = 60
HELM_INDEX = "https://helm.ngc.nvidia.com/nvidia/index.yaml"
GITHUB_RELEASES = "https://api.github.com/repos/NVIDIA/gpu-operator/releases?per_page=100"
PYPI_PROJECT = {"vllm": "vllm", "sglang": "sglang", "huggingface_hub": "huggingface-hub"}


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


# --------------------------------------------------------------------------- the newest releases

class Unreachable(Exception):
    """An upstream index could not be read: the message says which and why."""


def _get(url, what):
    request = urllib.request.Request(url, headers={"User-Agent": "gpuinfer-contract-refresh"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.read()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise Unreachable("cannot reach %s (%s): %s" % (what, url, getattr(exc, "reason", exc)))


def version_key(version):
    return [int(part) for part in re.findall(r"\d+", str(version))]


def is_final(version):
    return re.fullmatch(r"v?\d+(\.\d+)*(\.post\d+)?", str(version)) is not None


def newest_final(versions):
    final = [version for version in versions if is_final(version)]
    return max(final, key=version_key) if final else None


def newest_pypi(project):
    url = "https://pypi.org/pypi/%s/json" % project
    try:
        meta = json.loads(_get(url, "PyPI"))
    except ValueError as exc:
        raise Unreachable("cannot read PyPI's answer for %s: %s" % (project, exc))
    versions = [version for version, files in meta.get("releases", {}).items()
                if files and not all(item.get("yanked") for item in files)]
    newest = newest_final(versions)
    if newest is None:
        raise Unreachable("PyPI lists no final release of %s" % project)
    return newest


def newest_chart():
    """The newest gpu-operator chart: NVIDIA's Helm repository, else GitHub's releases."""
    reasons = []
    try:
        index = yaml.safe_load(_get(HELM_INDEX, "NVIDIA's Helm repository"))
        newest = newest_final(str(entry.get("version")) for entry in (index.get("entries") or {}).get("gpu-operator", []))
        if newest:
            return newest if newest.startswith("v") else "v" + newest
        reasons.append("NVIDIA's Helm repository lists no gpu-operator chart")
    except (Unreachable, yaml.YAMLError, AttributeError) as exc:
        reasons.append(str(exc))
    try:
        releases = json.loads(_get(GITHUB_RELEASES, "GitHub"))
        newest = newest_final(item.get("tag_name") for item in releases if not item.get("prerelease"))
        if newest:
            return newest
        reasons.append("GitHub lists no gpu-operator release")
    except (Unreachable, ValueError, AttributeError) as exc:
        reasons.append(str(exc))
    raise Unreachable("; ".join(reasons))


def pinned_version(name):
    if name == "huggingface_hub":
        return check.HUGGINGFACE_HUB
    return check.pinned_versions()[name]


def newest_version(name):
    if name == "gpu_operator":
        return newest_chart()
    return newest_pypi(PYPI_PROJECT[name])


# --------------------------------------------------------------------------- extraction

def _run(arguments):
    return subprocess.call([sys.executable] + [str(part) for part in arguments]) == 0


def extract_vllm(version):
    """vllm-<version>.json and memory-accounting-<version>.json from one download of the sdist."""
    sys.path.insert(0, str(HERE / "vllm"))
    import extract as vllm_extract  # noqa: E402

    with tempfile.TemporaryDirectory(prefix="vllm-sdist-") as tmp:
        try:
            path, url, _sha = vllm_extract.download("vllm", version, pathlib.Path(tmp), lambda message: None)
        except SystemExit as exc:
            raise Unreachable("cannot download vllm %s from PyPI: %s" % (version, exc))
        except (urllib.error.URLError, OSError) as exc:
            raise Unreachable("cannot reach PyPI to download vllm %s: %s" % (version, getattr(exc, "reason", exc)))
        ok = _run([HERE / "vllm" / "extract.py", "--version", version, "--archive", path, "--source-url", url, "-q"])
        # The accounting's lines may have moved: a missing term is reported, not a failure here.
        _run([HERE / "vllm" / "memory_accounting.py", "--version", version, "--archive", path, "--source-url", url, "-q"])
    return ok


def extract(name, version):
    if name == "vllm":
        return extract_vllm(version)
    if name == "sglang":
        return _run([HERE / "sglang" / "extract.py", "--version", version, "-q"])
    if name == "gpu_operator":
        return _run([HERE / "gpu_operator" / "extract.py", "--tag", version, "-q"])
    return _run([HERE / "huggingface_hub" / "extract.py", "--version", version])


def memory_accounting(version):
    path = HERE / "vllm" / ("memory-accounting-%s.json" % version)
    return json.loads(path.read_text()) if path.is_file() else None


# --------------------------------------------------------------------------- what the collection renders

def scenarios():
    """The scenario inventories (`make demo SCENARIO=<name>`); sim is the simulated cluster, not a scenario."""
    return sorted(path.name for path in (ROOT / "inventories").iterdir()
                  if path.is_dir() and path.name != "sim" and (path / "hosts.yml").exists())


def render(names, workdir):
    """[(scenario, objects, gpu-operator values list)]: site.yml (with the GPU Operator) and benchmark.yml in render
    mode for each scenario, as `make demo` renders them."""
    playbook = ROOT / ".venv" / "bin" / "ansible-playbook"
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    rendered = []
    for name in names:
        out = pathlib.Path(workdir) / name
        runs = [["playbooks/site.yml", "-e", "gpuinfer_render_dir=%s" % (out / "site"), "-e", "gpuinfer_install_gpu_operator=true"],
                ["playbooks/benchmark.yml", "-e", "gpuinfer_render_dir=%s" % (out / "bench"),
                 "-e", "plan_output_dir=%s" % (out / "bench"), "-e", "benchmark_output_dir=%s" % (out / "bench")]]
        for arguments in runs:
            result = subprocess.run([str(playbook), "-i", "inventories/%s" % name] + arguments, cwd=ROOT, env=env,
                                    capture_output=True, text=True, timeout=900, check=False)
            if result.returncode != 0:
                raise SystemExit("rendering %s with %s failed:\n%s" % (name, arguments[0], result.stdout[-3000:]))
        objects, values = [], []
        for path in sorted(out.glob("*/*.yaml")):
            if path.name == "gpu-operator-values.yaml":
                values.append(yaml.safe_load(path.read_text()) or {})
            else:
                objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict) and "kind" in doc)
        rendered.append((name, objects, values))
    return rendered


# --------------------------------------------------------------------------- the report (pure)

# What each upstream's contract lists, and what of it the collection renders (check.rendered_settings kinds).
CONTRACT_LISTS = {
    "vllm": (("flags", "flags"), ("env", "VLLM_* variables"), ("metrics", "metrics"), ("bench_serve_flags", "bench flags")),
    "sglang": (("flags", "flags"), ("env", "SGLANG_* variables"), ("metrics", "metrics"), ("routes", "routes")),
    "huggingface_hub": (("env", "variables"),),
    "gpu_operator": (("keys", "values keys"),),
}
RENDERED_KINDS = {
    "vllm": (("vllm_flags", "vllm serve flags"), ("vllm_env", "VLLM_* variables"), ("vllm_metrics", "vllm: series"),
             ("vllm_bench_flags", "vllm bench serve flags")),
    "sglang": (("sglang_flags", "server flags"), ("sglang_env", "SGLANG_* variables"), ("sglang_metrics", "sglang: series")),
    "huggingface_hub": (("hf_env", "HF_* variables"),),
    "gpu_operator": (("gpu_operator_keys", "values keys"),),
}


def violations(name, contract, objects, values_list, context):
    """What the render tests' checks (check.py) say about these objects against ``contract`` as the release of
    upstream ``name``; context holds the other pinned contracts the checks need (vllm, sglang, hub, dcgm)."""
    if name == "vllm":
        metrics = check.metric_violations(objects, vllm=contract, sglang=context.get("sglang"), dcgm=context.get("dcgm"))
        return (check.vllm_violations(objects, vllm=contract, hub=context["hub"])
                + [item for item in metrics if "exported by vLLM" in item]
                + check.bench_violations(objects, vllm=contract))
    if name == "sglang":
        metrics = check.metric_violations(objects, vllm=context.get("vllm"), sglang=contract, dcgm=context.get("dcgm"))
        return (check.sglang_violations(objects, sglang=contract, hub=context["hub"])
                + [item for item in metrics if "exported by SGLang" in item])
    if name == "huggingface_hub":
        found = []
        for obj in objects:
            for where, container in check._containers(obj):
                if check._is_vllm(container) or check._is_sglang(container):
                    found.extend(check._hf_violations(where, container, contract))
        return found
    if name == "gpu_operator":
        found = []
        for values in values_list:
            found.extend(check.gpu_operator_violations(values, chart=contract))
        return found
    raise KeyError(name)


def _generic(message, version):
    return message.replace(" %s" % version, " <release>")


def _counts(before, after):
    before, after = set(before), set(after)
    return "%d -> %d (+%d -%d)" % (len(before), len(after), len(after - before), len(before - after))


def report(name, pinned, newest, rendered, context, accounting=None):
    """Lines saying what ``newest`` (a contract) changes against ``pinned`` for what ``rendered`` holds.

    rendered: [(scenario, objects, gpu-operator values list)]. accounting: vLLM's memory-accounting evidence of the
    newest release (memory_accounting.py), or None. Pure: no network, no files.
    """
    same = str(pinned["version"]) == str(newest["version"])
    head = "%s %s -> %s" % (name, pinned["version"], newest["version"])
    lines = [head + (" (the pinned release is the newest)" if same else "")]
    if not same:
        sizes = ", ".join("%s %s" % (label, _counts(pinned.get(key, []), newest.get(key, [])))
                          for key, label in CONTRACT_LISTS[name])
        lines.append("  contract: " + sizes)

    removed, already = {}, {}
    settings = {"flag_values": {}}
    for scenario, objects, values_list in rendered:
        found = check.rendered_settings(objects, values_list)
        for flag, values in found.pop("flag_values").items():
            settings["flag_values"].setdefault(flag, set()).update(values)
        for kind, names in found.items():
            target = settings.setdefault(kind, {})
            for item, wheres in names.items():
                target.setdefault(item, set()).update("%s: %s" % (scenario, where) for where in wheres)
        before = set(_generic(item, pinned["version"]) for item in violations(name, pinned, objects, values_list, context))
        for item in violations(name, newest, objects, values_list, context):
            key = _generic(item, newest["version"])
            where, sep, what = key.partition(": ")
            if not sep:  # a values key: the message names no object
                where, what = "values", key
            (already if key in before else removed).setdefault(what, set()).add("%s: %s" % (scenario, where))

    used = ", ".join("%d %s" % (len(settings.get(kind, {})), label) for kind, label in RENDERED_KINDS[name])
    if not removed:
        lines.append("  rendered: %s: all present in %s" % (used, newest["version"]))
    else:
        lines.append("  rendered: %s" % used)
        lines.append("  REMOVED in %s, and rendered by the collection:" % newest["version"])
        for what in sorted(removed):
            lines.append("    %s  [%s]" % (what.replace("<release>", str(newest["version"])), "; ".join(sorted(removed[what]))))
    if already:
        lines.append("  already not in the pinned release (the render tests fail on these):")
        for what in sorted(already):
            lines.append("    %s  [%s]" % (what.replace("<release>", str(newest["version"])), "; ".join(sorted(already[what]))))

    changed = []
    if name in ("vllm", "sglang"):
        old_choices, new_choices = pinned.get("flag_choices", {}), newest.get("flag_choices", {})
        kind = "vllm_flags" if name == "vllm" else "sglang_flags"
        for flag in sorted(settings.get(kind, {})):
            before, after = old_choices.get(flag), new_choices.get(flag)
            if before == after or (before is None and after is None):
                continue
            values = sorted(value for value in settings["flag_values"].get(flag, ()) if "$(" not in value)
            old_set, new_set = set(str(item) for item in before or ()), set(str(item) for item in after or ())
            if before is None or after is None:
                detail = "choices %s -> %s" % (before, after)
            else:
                detail = "choices " + " ".join(["+" + item for item in sorted(new_set - old_set)]
                                               + ["-" + item for item in sorted(old_set - new_set)])
            bad = [value for value in values if after is not None and value not in new_set]
            if bad:
                detail += "; the rendered %s is no longer a choice" % ", ".join(bad)
            elif values:
                detail += " (rendered: %s, still a choice)" % ", ".join(values)
            changed.append("%s: %s" % (flag, detail))
    if name == "gpu_operator":
        old_defaults, new_defaults = pinned.get("defaults", {}), newest.get("defaults", {})
        for key in sorted(settings.get("gpu_operator_keys", {})):
            if key in old_defaults and key in new_defaults and old_defaults[key] != new_defaults[key]:
                changed.append("%s: default %r -> %r" % (key, old_defaults[key], new_defaults[key]))
    if name == "vllm" and pinned.get("image", {}).get("CUDA_VERSION") != newest.get("image", {}).get("CUDA_VERSION"):
        changed.append("image CUDA %s -> %s (the driver the validation asks for: engine_vllm.ENGINE.image_cuda)"
                       % (pinned.get("image", {}).get("CUDA_VERSION"), newest.get("image", {}).get("CUDA_VERSION")))
    if changed:
        lines.append("  changed for what is rendered:")
        lines.extend("    " + item for item in changed)
    elif not same:
        lines.append("  changed for what is rendered: nothing")

    if name == "vllm":
        if accounting is None:
            lines.append("  memory accounting: no memory-accounting-%s.json (run tests/contracts/vllm/memory_accounting.py)"
                         % newest["version"])
        elif accounting.get("missing"):
            lines.append("  memory accounting: source lines module_utils/plan/sizing.py follows that %s no longer has (moved "
                         "or changed; check the planner): %s" % (newest["version"], ", ".join(accounting["missing"])))
        else:
            lines.append("  memory accounting: all %d source lines module_utils/plan/sizing.py follows are in %s"
                         % (len(accounting.get("terms", [])), newest["version"]))
    return lines


def latest(names, scenario_names=None, force=False, workdir=None):
    """Print the drift report; 1 when an upstream could not be checked."""
    names = list(names or UPSTREAMS)
    failed, newest = [], {}
    for name in names:
        pinned = pinned_version(name)
        try:
            version = newest_version(name)
        except Unreachable as exc:
            print("%s: %s" % (name, exc), flush=True)
            failed.append(name)
            continue
        path = check.contract_path(name, version)
        if version != pinned and (force or not path.is_file()):
            print("%s: extracting the %s contract (newest; pinned %s) ..." % (name, version, pinned), flush=True)
            try:
                ok = extract(name, version)
            except Unreachable as exc:
                print("%s: %s" % (name, exc), flush=True)
                ok = False
            if not ok or not path.is_file():
                print("%s: could not extract the %s contract" % (name, version), flush=True)
                failed.append(name)
                continue
        newest[name] = version
    if newest:
        with tempfile.TemporaryDirectory(prefix="contracts-refresh-") as tmp:
            chosen = scenario_names or scenarios()
            print("rendering %s ..." % ", ".join(chosen), flush=True)
            rendered = render(chosen, workdir or tmp)
            context = {"vllm": check.load("vllm"), "sglang": check.load("sglang"), "hub": check.hub_contract(),
                       "dcgm": check.dcgm_contract()}
            print()
            for name in names:
                if name not in newest:
                    continue
                accounting = memory_accounting(newest[name]) if name == "vllm" else None
                pinned = check.load(name, pinned_version(name))
                for line in report(name, pinned, check.load(name, newest[name]), rendered, context, accounting):
                    print(line)
    print("\nnot checked here: nim (by hand from NVIDIA's docs, tests/contracts/nim/README.md), dcgm (dcgm/README.md)")
    if failed:
        print("could not check: %s" % ", ".join(failed))
        return 1
    return 0


def parse(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", metavar="UPSTREAM", help="of %s (default: all)" % ", ".join(UPSTREAMS))
    parser.add_argument("--latest", action="store_true", help="the newest releases: extract and report drift")
    parser.add_argument("--scenario", action="append", help="with --latest: render only this inventory (repeatable)")
    parser.add_argument("--force", action="store_true", help="with --latest: extract again even if the file exists")
    return parser.parse_args(argv)


if __name__ == "__main__":
    arguments = parse(sys.argv[1:])
    if arguments.latest:
        unknown = [name for name in arguments.names if name not in UPSTREAMS]
        if unknown:
            raise SystemExit("unknown upstream(s) %s; choose from %s" % (", ".join(unknown), ", ".join(UPSTREAMS)))
        sys.exit(latest(arguments.names, arguments.scenario, arguments.force))
    main(arguments.names)
