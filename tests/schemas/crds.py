"""CRD openAPIV3 schemas for render tests, read from the Go module cache.

The CRDs are not copied into this repository: `go mod download -json` fetches each
pinned module once (through GOPROXY) into the Go module cache, and the schema is
read from the CRD YAML inside it. Later runs hit the cache and need no network.
"""

import functools
import json
import os
import shutil
import subprocess

import yaml

# (apiVersion, kind) -> (Go module, version, CRD file inside the module)
# Newest releases whose go.mod the project's Go toolchain (go 1.26) can download: KEDA v2.21.1 and
# gateway-api v1.7.0 declare go 1.27.x, which `go mod download` refuses under go 1.26 with GOTOOLCHAIN=local.
PINNED_CRDS = {
    ("leaderworkerset.x-k8s.io/v1", "LeaderWorkerSet"): (
        "sigs.k8s.io/lws", "v0.10.0", "config/crd/bases/leaderworkerset.x-k8s.io_leaderworkersets.yaml"),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): (
        "github.com/prometheus-operator/prometheus-operator", "v0.94.1",
        "example/prometheus-operator-crd/monitoring.coreos.com_servicemonitors.yaml"),
    ("monitoring.coreos.com/v1", "PrometheusRule"): (
        "github.com/prometheus-operator/prometheus-operator", "v0.94.1",
        "example/prometheus-operator-crd/monitoring.coreos.com_prometheusrules.yaml"),
    ("keda.sh/v1alpha1", "ScaledObject"): (
        "github.com/kedacore/keda/v2", "v2.21.0", "config/crd/bases/keda.sh_scaledobjects.yaml"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"): (
        "sigs.k8s.io/gateway-api", "v1.6.3", "config/crd/standard/gateway.networking.k8s.io_httproutes.yaml"),
}


class CRDUnavailable(RuntimeError):
    """The module could not be downloaded (no Go toolchain or no proxy access)."""


@functools.lru_cache(maxsize=None)
def module_dir(module, version):
    """Directory of module@version in the Go module cache, downloading it the first time."""
    go = shutil.which("go")
    if go is None:
        raise CRDUnavailable("the go command is not on PATH; it fetches %s@%s" % (module, version))
    result = subprocess.run([go, "mod", "download", "-json", "%s@%s" % (module, version)],
                            capture_output=True, text=True, timeout=600, check=False,
                            cwd=os.path.dirname(os.path.abspath(__file__)),
                            env=dict(os.environ, GO111MODULE="on"))
    try:
        info = json.loads(result.stdout)
    except ValueError:
        raise CRDUnavailable("go mod download %s@%s failed: %s" % (module, version, result.stderr.strip()))
    if info.get("Error") or not info.get("Dir"):
        raise CRDUnavailable("go mod download %s@%s failed: %s" % (module, version, info.get("Error")))
    return info["Dir"]


@functools.lru_cache(maxsize=None)
def crd_schema(api_version, kind):
    """The openAPIV3Schema of the served version matching api_version, for jsonschema."""
    module, version, path = PINNED_CRDS[(api_version, kind)]
    with open(os.path.join(module_dir(module, version), path)) as handle:
        crd = yaml.safe_load(handle)
    group, served_version = api_version.split("/")
    if crd["spec"]["group"] != group or crd["spec"]["names"]["kind"] != kind:
        raise CRDUnavailable("%s does not define %s %s" % (path, api_version, kind))
    for entry in crd["spec"]["versions"]:
        if entry["name"] == served_version:
            return entry["schema"]["openAPIV3Schema"]
    raise CRDUnavailable("%s@%s %s has no version %s" % (module, version, path, served_version))


def strict(schema):
    """Copy of schema that rejects unknown fields, as the API server's strict field validation does.

    CRD schemas are structural: unknown fields are pruned silently unless marked to be
    preserved, so every object schema with properties gets additionalProperties false.
    """
    if isinstance(schema, list):
        return [strict(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: strict(value) for key, value in schema.items()}
    if ("properties" in schema and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")):
        result["additionalProperties"] = False
    return result


def has_schema(api_version, kind):
    return (api_version, kind) in PINNED_CRDS
