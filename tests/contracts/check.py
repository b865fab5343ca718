"""Check rendered objects against the upstream contracts in this folder.

Each function returns a list of violations (strings naming the object, the setting and the contract);
an empty list means every flag, env var, command, metric or values key is in the pinned release.
The contracts are data extracted from the upstream sources (see README.md); the pinned versions are
read from the roles' defaults, so bumping a pin without refreshing its contract fails here.
"""

import json
import pathlib
import re
import shlex

import yaml

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ROLES = ROOT / "collections" / "ansible_collections" / "gpuinfer" / "serving" / "roles"

# Kubernetes expands $(VAR) in args; a flag's name is what comes before "=".
_FLAG = re.compile(r"^(--?[A-Za-z0-9][A-Za-z0-9-]*)")


def role_default(role, variable):
    return yaml.safe_load((ROLES / role / "defaults" / "main.yml").read_text())[variable]


def pinned_versions():
    """The upstream versions the roles pin, as the contract files name them."""
    return {
        "vllm": str(role_default("vllm", "vllm_image_tag")).lstrip("v"),
        "gpu_operator": str(role_default("gpu_operator", "gpu_operator_chart_version")),
        "nim": str(role_default("nim", "nim_image_tag")),
        "sglang": str(role_default("sglang", "sglang_image_tag")).lstrip("v"),
    }


def contract_path(name, version=None):
    version = version or pinned_versions()[name]
    if name == "vllm":
        return HERE / "vllm" / ("vllm-%s.json" % version)
    if name == "gpu_operator":
        return HERE / "gpu_operator" / ("gpu-operator-%s.json" % version)
    if name == "nim":
        # NVIDIA documents NIM per minor release: 2.1.6 is covered by the 2.1 contract.
        return HERE / "nim" / ("nim-%s.json" % ".".join(version.split(".")[:2]))
    if name == "sglang":
        return HERE / "sglang" / ("sglang-%s.json" % version)
    if name == "huggingface_hub":
        return HERE / "huggingface_hub" / ("huggingface_hub-%s.json" % version)
    if name == "dcgm":
        return HERE / "dcgm" / ("dcgm-exporter-%s.json" % version)
    raise KeyError(name)


def load(name, version=None):
    path = contract_path(name, version)
    if not path.is_file():
        raise FileNotFoundError("no %s contract for the pinned version at %s: run tests/contracts/refresh.py" % (name, path))
    return json.loads(path.read_text())


# The HF_* variables are read by huggingface_hub, not by vLLM: the release the pinned vLLM image
# resolved (vLLM 0.34.0 asks for huggingface_hub >= 2.0.0, requirements/common.txt; 2.4.0 was the newest on PyPI
# when vLLM 0.34.0 was released, 2026-11-16).
HUGGINGFACE_HUB = "2.4.0"


def hub_contract():
    return load("huggingface_hub", HUGGINGFACE_HUB)


# The DCGM exporter whose counter files name the GPU series the dashboards and alerts read: the newest tag
# that could be read (the pinned GPU Operator deploys 4.6.0-4.8.3; see dcgm/README.md).
DCGM_EXPORTER = "4.5.3-4.8.2"


def dcgm_contract():
    return load("dcgm", DCGM_EXPORTER)


def flag_names(args):
    names = []
    for arg in args or []:
        match = _FLAG.match(str(arg))
        if match:
            names.append(match.group(1))
    return names


def _containers(obj):
    """(where, container) for every container of a Deployment, LeaderWorkerSet or Job."""
    spec = obj.get("spec") or {}
    templates = []
    if obj["kind"] in ("Deployment", "Job"):
        templates.append(("", spec["template"]))
    elif obj["kind"] == "LeaderWorkerSet":
        lwt = spec["leaderWorkerTemplate"]
        templates.append(("leader ", lwt.get("leaderTemplate") or lwt["workerTemplate"]))
        templates.append(("worker ", lwt["workerTemplate"]))
    for role, template in templates:
        for container in template["spec"].get("containers", []) + template["spec"].get("initContainers", []):
            yield "%s %s %scontainer %s" % (obj["kind"], obj["metadata"]["name"], role, container["name"]), container


def _is_vllm(container):
    return str(container.get("image", "")).split(":")[0].endswith("vllm/vllm-openai")


def _is_sglang(container):
    return str(container.get("image", "")).split(":")[0].endswith("lmsysorg/sglang")


def _is_nim(container):
    return str(container.get("image", "")).startswith("nvcr.io/nim/")


def _hf_violations(where, container, hub):
    known = set(hub["env"])
    return ["%s: env %s is not read by huggingface_hub %s" % (where, item["name"], hub["version"])
            for item in container.get("env", []) if item["name"].startswith("HF_") and item["name"] not in known]


def vllm_violations(objects, vllm=None, hub=None):
    """vLLM serve flags and VLLM_*/HF_* variables of every vLLM container, against the pinned release."""
    vllm = vllm or load("vllm")
    hub = hub or hub_contract()
    flags, env = set(vllm["flags"]) | set(vllm.get("flag_aliases", {})), set(vllm["env"])
    found = []
    for obj in objects:
        for where, container in _containers(obj):
            if not _is_vllm(container):
                continue
            command = container.get("command") or []
            if command[:2] == ["vllm", "serve"]:
                found.extend("%s: vllm serve %s is not a flag of vLLM %s" % (where, flag, vllm["version"])
                             for flag in flag_names(container.get("args")) if flag not in flags)
            found.extend("%s: env %s is not read by vLLM %s" % (where, item["name"], vllm["version"])
                         for item in container.get("env", []) if item["name"].startswith("VLLM_") and item["name"] not in env)
            found.extend(_hf_violations(where, container, hub))
    return found


def sglang_violations(objects, sglang=None, hub=None):
    """SGLang server flags, SGLANG_*/HF_* variables and probe paths of every SGLang container, against the pinned release."""
    sglang = sglang or load("sglang")
    hub = hub or hub_contract()
    flags, env, routes = set(sglang["flags"]) | set(sglang.get("flag_aliases", {})), set(sglang["env"]), set(sglang["routes"])
    found = []
    for obj in objects:
        for where, container in _containers(obj):
            if not _is_sglang(container) or (container.get("command") or [])[:2] == ["/bin/sh", "-c"]:
                # A benchmark Job runs SGLang's load generator from a script (checked with its own contract).
                continue
            if container.get("command") != ["python3", "-m", "sglang.launch_server"]:
                found.append("%s: command %s is not SGLang's server launcher" % (where, container.get("command")))
            found.extend("%s: %s is not a flag of SGLang %s" % (where, flag, sglang["version"])
                         for flag in flag_names(container.get("args")) if flag not in flags)
            found.extend("%s: env %s is not read by SGLang %s" % (where, item["name"], sglang["version"])
                         for item in container.get("env", []) if item["name"].startswith("SGLANG_") and item["name"] not in env)
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                path = ((container.get(probe) or {}).get("httpGet") or {}).get("path")
                if path and path not in routes:
                    found.append("%s: %s path %s is not served by SGLang %s" % (where, probe, path, sglang["version"]))
            found.extend(_hf_violations(where, container, hub))
    return found


def _bench_commands(container):
    """The ``vllm bench serve`` command lines of a benchmark Job's shell script, as argv lists."""
    command = container.get("command") or []
    if command[:2] != ["/bin/sh", "-c"] or len(command) < 3:
        return []
    return [shlex.split(line) for line in str(command[2]).splitlines() if line.startswith("vllm bench serve ")]


def bench_violations(objects, vllm=None):
    """``vllm bench serve`` flags of every benchmark Job (the benchmark role), against the pinned release's
    ``bench_serve_flags``."""
    found = []
    for obj in objects:
        for where, container in _containers(obj):
            commands = _bench_commands(container)
            if not commands:
                continue
            vllm = vllm or load("vllm")
            known = set(vllm["bench_serve_flags"])
            for argv in commands:
                found.extend("%s: vllm bench serve %s is not a flag of vLLM %s" % (where, flag, vllm["version"])
                             for flag in flag_names(argv[3:]) if flag not in known)
    return found


def rendered_settings(objects, values_list=()):
    """What the collection renders, by upstream: {kind: {name: set of "where" strings}}.

    Kinds: vllm_flags (``vllm serve`` flags, with the rendered value where there is one in flag_values), vllm_env,
    vllm_bench_flags, sglang_flags, sglang_env, hf_env, vllm_metrics, sglang_metrics, dcgm_metrics,
    gpu_operator_keys. The same selection as the *_violations functions (one place decides what is checked).
    """
    found = dict((kind, {}) for kind in ("vllm_flags", "vllm_env", "vllm_bench_flags", "sglang_flags", "sglang_env",
                                         "hf_env", "vllm_metrics", "sglang_metrics", "dcgm_metrics",
                                         "gpu_operator_keys"))
    flag_values = {}

    def add(kind, name, where):
        found[kind].setdefault(name, set()).add(where)

    for obj in objects:
        for where, container in _containers(obj):
            env = [item["name"] for item in container.get("env", [])]
            if _is_vllm(container) and (container.get("command") or [])[:2] == ["vllm", "serve"]:
                for arg in container.get("args") or []:
                    name = flag_names([arg])
                    if name:
                        add("vllm_flags", name[0], where)
                        if "=" in str(arg):
                            flag_values.setdefault(name[0], set()).add(str(arg).split("=", 1)[1])
            if _is_vllm(container):
                for name in env:
                    if name.startswith("VLLM_"):
                        add("vllm_env", name, where)
            if _is_sglang(container) and (container.get("command") or [])[:2] != ["/bin/sh", "-c"]:
                for name in flag_names(container.get("args")):
                    add("sglang_flags", name, where)
                for name in env:
                    if name.startswith("SGLANG_"):
                        add("sglang_env", name, where)
            if _is_vllm(container) or _is_sglang(container):
                for name in env:
                    if name.startswith("HF_"):
                        add("hf_env", name, where)
            for argv in _bench_commands(container):
                for name in flag_names(argv[3:]):
                    add("vllm_bench_flags", name, where)
        label = "%s %s" % (obj["kind"], obj["metadata"]["name"])
        text = json.dumps(obj)
        for kind, prefix in (("vllm_metrics", "vllm"), ("sglang_metrics", "sglang")):
            for name in _series(text, prefix):
                add(kind, name, label)
        for name in _dcgm_series(text):
            add("dcgm_metrics", name, label)
    for index, values in enumerate(values_list):
        for key in flatten(values):
            add("gpu_operator_keys", key, "gpu-operator values #%d" % (index + 1))
    found["flag_values"] = flag_values
    return found


def nim_violations(objects, nim=None):
    """NIM_*/NGC_* variables and commands of every NIM container, against NVIDIA's docs for the pinned release."""
    nim = nim or load("nim")
    documented = set(item["name"] for item in nim["env"] if item.get("documented_2_0") or item.get("documented_2_1"))
    commands = nim["commands"]
    found = []
    for obj in objects:
        for where, container in _containers(obj):
            if not _is_nim(container):
                continue
            for item in container.get("env", []):
                if item["name"].startswith(("NIM_", "NGC_")) and item["name"] not in documented:
                    found.append("%s: env %s is not in NVIDIA's NIM %s env reference" % (where, item["name"], nim["version"]))
            action = (container.get("command") or []) + (container.get("args") or [])
            if action:
                name = action[0]
                if name not in commands:
                    found.append("%s: %s is not a NIM %s command" % (where, name, nim["version"]))
                    continue
                allowed = set(commands[name].get("flags", [])) | set(commands[name].get("flags_unsettled", []))
                found.extend("%s: %s %s is not a documented flag" % (where, name, flag)
                             for flag in flag_names(action[1:]) if flag not in allowed)
    return found


def _series(text, prefix="vllm"):
    # Not an image reference such as lmsysorg/sglang:v0.5.23 (a metric name follows no "/").
    # A Prometheus metric name: letters, digits (e2e_...), underscores and colons, not starting with a digit.
    return set(re.findall(r"(?<![\w/.-])%s:[a-zA-Z_][a-zA-Z0-9_:]*" % prefix, str(text)))


def _dcgm_series(text):
    return set(re.findall(r"(?<![\w])DCGM_FI_[A-Z0-9_]*[A-Z0-9]", str(text)))


def exported_series(contract):
    """Every series name a release exports, from its metric names and types: a counter as <name>_total (a name the
    source already ends in _total stays as it is), a histogram as <name>_bucket, _sum and _count, a summary as
    <name>_sum and _count, a gauge (or a name of unknown type) as it is."""
    types = contract.get("metric_types", {})
    names = set()
    for name in contract["metrics"]:
        kind = types.get(name)
        if kind == "counter":
            names.add(name if name.endswith("_total") else name + "_total")
        elif kind == "histogram":
            names.update(name + suffix for suffix in ("_bucket", "_sum", "_count"))
        elif kind == "summary":
            names.update(name + suffix for suffix in ("_sum", "_count"))
        else:
            names.add(name)
    return names


def metric_violations(objects, vllm=None, sglang=None, dcgm=None):
    """Every vllm:*, sglang:* and DCGM_FI_* series an object names (ServiceMonitor, HPA adapter rule, KEDA trigger,
    dashboard, alert rule), against the pinned releases.

    Engine series must be exported by the pinned engine (exported_series: counters with _total, histograms as
    _bucket/_sum/_count; a name the contract lists without a type counts as it is).
    DCGM series must be in both of the exporter's counter files (dcgm/README.md).
    """
    found = []
    for prefix, contract in (("vllm", vllm), ("sglang", sglang)):
        named = [(obj, sorted(_series(json.dumps(obj), prefix))) for obj in objects]
        if not any(series for _, series in named):
            continue
        contract = contract or load(prefix)
        metrics = exported_series(contract)
        for obj, series in named:
            found.extend("%s %s: metric %s is not exported by %s %s" % (obj["kind"], obj["metadata"]["name"], name,
                                                                        "vLLM" if prefix == "vllm" else "SGLang", contract["version"])
                         for name in series if name not in metrics)
    named = [(obj, sorted(_dcgm_series(json.dumps(obj)))) for obj in objects]
    if any(series for _, series in named):
        dcgm = dcgm or dcgm_contract()
        known = set(dcgm["metrics"]) & set(dcgm["dcp_metrics_included"])
        for obj, series in named:
            found.extend("%s %s: series %s is not in dcgm-exporter %s's default counters (etc/default-counters.csv and "
                         "etc/dcp-metrics-included.csv)" % (obj["kind"], obj["metadata"]["name"], name, dcgm["version"])
                         for name in series if name not in known)
    return found


def flatten(values, prefix=""):
    keys = []
    for key, value in (values or {}).items():
        dotted = prefix + str(key)
        keys.append(dotted)
        if isinstance(value, dict):
            keys.extend(flatten(value, dotted + "."))
    return keys


def gpu_operator_violations(values, chart=None):
    """Every values key the role sets, against the pinned chart's values.yaml."""
    chart = chart or load("gpu_operator")
    known = set(chart["keys"])
    return ["values key %s is not in gpu-operator %s values.yaml" % (key, chart["version"])
            for key in flatten(values) if key not in known]
