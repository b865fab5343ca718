#!/usr/bin/env python3
"""Create the simulated GPU nodes of a profile in the local sim cluster.

The profile (tests/cluster/profiles/<name>.yaml) lists node groups; every node
becomes a Node object whose status already carries capacity, allocatable and
nodeInfo, with the labels GPU Feature Discovery and the GPU Operator put on
real GPU nodes. kwok (started by tests/cluster/sim.sh) manages every node
with the annotation ``kwok.x-k8s.io/node=fake`` and marks it Ready.

Usage:
    make_nodes.py --kubeconfig K --profile default [--threads 16] [--wait 120]
    make_nodes.py --profile large-2000 --dry-run     # print a summary only
    make_nodes.py --kubeconfig K --profile default --delete

Only the official ``kubernetes`` Python client and PyYAML are used.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import threading
import time
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

HERE = Path(__file__).resolve().parent
PROFILES_DIR = HERE / "profiles"

# Selector shared with sim.sh (kwok --manage-nodes-with-annotation-selector)
# and the e2e tests.
KWOK_ANNOTATION = "kwok.x-k8s.io/node"
KWOK_ANNOTATION_VALUE = "fake"
MANAGED_LABEL = "sim.gpuinfer.io/managed"
GROUP_LABEL = "sim.gpuinfer.io/group"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}

OS_IMAGE = "Ubuntu 24.04.3 LTS"
KERNEL = "6.8.0-85-generic"
RUNTIME = "containerd://2.1.4"


def profile_path(name_or_path: str) -> Path:
    """Resolve a profile name (``default``) or a path to its YAML file."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") and candidate.exists():
        return candidate
    named = PROFILES_DIR / f"{name_or_path}.yaml"
    if named.exists():
        return named
    known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.yaml")))
    raise SystemExit(f"make_nodes: unknown profile {name_or_path!r} (known: {known})")


def _quantity(value: Any) -> Decimal:
    from kubernetes.utils import parse_quantity

    return Decimal(parse_quantity(str(value)))


def _cpu_string(value: Decimal) -> str:
    millis = int(value * 1000)
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def _memory_string(value: Decimal) -> str:
    return f"{int(value) // 1024}Ki"


def _merged(defaults: dict, group: dict, key: str) -> dict:
    out = dict(defaults.get(key) or {})
    out.update(group.get(key) or {})
    return out


def gpu_labels(gpu: dict, defaults: dict, group: dict) -> dict[str, str]:
    """Labels that GPU Feature Discovery (and the GPU Operator) publish."""
    driver = str(group.get("cudaDriver") or defaults.get("cudaDriver") or "570.172.08")
    runtime = str(group.get("cudaRuntime") or defaults.get("cudaRuntime") or "12.8")
    d_major, d_minor, d_rev = (driver.split(".") + ["0", "0"])[:3]
    r_major, r_minor = (runtime.split(".") + ["0"])[:2]
    c_major, c_minor = (str(gpu.get("compute", "8.0")).split(".") + ["0"])[:2]
    mig_strategy = str(group.get("migStrategy") or defaults.get("migStrategy") or "single")
    return {
        "nvidia.com/gpu.present": "true",
        "nvidia.com/gpu.product": str(gpu["product"]),
        "nvidia.com/gpu.memory": str(gpu["memoryMiB"]),
        "nvidia.com/gpu.count": str(gpu["count"]),
        "nvidia.com/gpu.family": str(gpu["family"]),
        "nvidia.com/gpu.machine": str(gpu.get("machine", "unknown")),
        "nvidia.com/gpu.compute.major": c_major,
        "nvidia.com/gpu.compute.minor": c_minor,
        "nvidia.com/gpu.replicas": "1",
        "nvidia.com/gpu.sharing-strategy": "none",
        "nvidia.com/cuda.driver-version.major": d_major,
        "nvidia.com/cuda.driver-version.minor": d_minor,
        "nvidia.com/cuda.driver-version.revision": d_rev,
        "nvidia.com/cuda.driver-version.full": driver,
        "nvidia.com/cuda.runtime-version.major": r_major,
        "nvidia.com/cuda.runtime-version.minor": r_minor,
        "nvidia.com/cuda.runtime-version.full": runtime,
        "nvidia.com/mig.capable": "true" if gpu.get("migCapable") else "false",
        "nvidia.com/mig.strategy": mig_strategy,
    }


def build_nodes(profile: dict, kubelet_version: str = "") -> list[dict]:
    """Expand a profile into Node manifests (dicts ready for the API)."""
    defaults = profile.get("defaults") or {}
    nodes: list[dict] = []
    seen: set[str] = set()
    for group in profile.get("groups") or []:
        name = str(group["name"])
        count = int(group["count"])
        zones = group.get("zones") or defaults.get("zones") or ["sim-zone-a"]
        gpu = group.get("gpu")
        labels_extra = _merged(defaults, group, "labels")
        annotations_extra = _merged(defaults, group, "annotations")
        resources = _merged(defaults, group, "resources")
        reserved = _merged(defaults, group, "reserved")
        gpu_taint = bool(group.get("gpuTaint", defaults.get("gpuTaint", True)))
        taints = [dict(t) for t in (group.get("taints") or [])]
        if gpu and gpu_taint:
            taints.insert(0, dict(GPU_TAINT))

        cpu = _quantity(group.get("cpu", defaults.get("cpu", "32")))
        memory = _quantity(group.get("memory", defaults.get("memory", "128Gi")))
        storage = _quantity(group.get("ephemeralStorage", defaults.get("ephemeralStorage", "1Ti")))
        pods = str(group.get("pods", defaults.get("pods", 110)))
        cpu_alloc = max(cpu - _quantity(reserved.get("cpu", 0)), Decimal("0.1"))
        mem_alloc = max(memory - _quantity(reserved.get("memory", 0)), Decimal(2**30))

        capacity = {
            "cpu": _cpu_string(cpu),
            "memory": _memory_string(memory),
            "ephemeral-storage": _memory_string(storage),
            "pods": pods,
            "hugepages-1Gi": "0",
            "hugepages-2Mi": "0",
        }
        if gpu:
            capacity["nvidia.com/gpu"] = str(int(gpu["count"]))
        for res_name, res_count in resources.items():
            capacity[str(res_name)] = str(int(res_count))
        allocatable = dict(capacity)
        allocatable["cpu"] = _cpu_string(cpu_alloc)
        allocatable["memory"] = _memory_string(mem_alloc)

        for index in range(count):
            node_name = f"{name}-{index}"
            if node_name in seen:
                raise SystemExit(f"make_nodes: duplicate node name {node_name}")
            seen.add(node_name)
            zone = str(zones[index % len(zones)])
            labels = {
                "kubernetes.io/hostname": node_name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": str(group.get("instanceType", name)),
                "topology.kubernetes.io/zone": zone,
                "type": "kwok",
                MANAGED_LABEL: "true",
                GROUP_LABEL: name,
            }
            if gpu:
                labels.update(gpu_labels(gpu, defaults, group))
            labels.update({str(k): str(v) for k, v in labels_extra.items()})
            annotations = {
                KWOK_ANNOTATION: KWOK_ANNOTATION_VALUE,
                "node.alpha.kubernetes.io/ttl": "0",
            }
            annotations.update({str(k): str(v) for k, v in annotations_extra.items()})
            ident = str(uuid.uuid5(uuid.NAMESPACE_DNS, f"{node_name}.gpuinfer-sim"))
            node = {
                "apiVersion": "v1",
                "kind": "Node",
                "metadata": {"name": node_name, "labels": labels, "annotations": annotations},
                "spec": {"providerID": f"kwok://{node_name}", "taints": taints},
                "status": {
                    "capacity": dict(capacity),
                    "allocatable": dict(allocatable),
                    "nodeInfo": {
                        "architecture": "amd64",
                        "operatingSystem": "linux",
                        "osImage": OS_IMAGE,
                        "kernelVersion": KERNEL,
                        "containerRuntimeVersion": RUNTIME,
                        "kubeletVersion": kubelet_version or "v0.0.0-sim",
                        "kubeProxyVersion": "",
                        "bootID": ident,
                        "machineID": ident.replace("-", ""),
                        "systemUUID": ident,
                    },
                },
            }
            if not taints:
                del node["spec"]["taints"]
            nodes.append(node)
    return nodes


def load_profile(name_or_path: str) -> dict:
    with open(profile_path(name_or_path), encoding="utf-8") as fh:
        data = yaml.safe_load(fh) or {}
    if not isinstance(data.get("groups"), list) or not data["groups"]:
        raise SystemExit(f"make_nodes: profile {name_or_path!r} has no groups")
    return data


def _api(kubeconfig: str, pool: int):
    from kubernetes import client, config

    cfg = client.Configuration()
    config.load_kube_config(config_file=kubeconfig, client_configuration=cfg)
    cfg.connection_pool_maxsize = max(pool, 4)
    return client.CoreV1Api(client.ApiClient(cfg))


def create_nodes(api, nodes: list[dict], threads: int) -> tuple[int, int]:
    """Create nodes in parallel; existing nodes are left alone."""
    from kubernetes.client.rest import ApiException

    created = existing = 0
    lock = threading.Lock()

    def one(node: dict) -> str:
        for attempt in range(5):
            try:
                # Skip response deserialisation (it dominates client CPU time),
                # but read the body so that the connection goes back to the pool.
                resp = api.create_node(node, _preload_content=False)
                _ = resp.data
                return "created"
            except ApiException as exc:
                if exc.status == 409:
                    return "existing"
                if exc.status in (429, 500, 503, 504) and attempt < 4:
                    time.sleep(0.5 * (attempt + 1))
                    continue
                raise RuntimeError(
                    f"creating node {node['metadata']['name']}: HTTP {exc.status} {exc.reason}: {exc.body}"
                ) from exc
        return "created"

    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        for result in pool.map(one, nodes):
            with lock:
                if result == "created":
                    created += 1
                else:
                    existing += 1
    return created, existing


def delete_nodes(api, threads: int) -> int:
    names = [n["metadata"]["name"] for n in _list_nodes(api)]

    def one(name: str) -> None:
        from kubernetes.client.rest import ApiException

        try:
            _ = api.delete_node(name, _preload_content=False).data
        except ApiException as exc:
            if exc.status != 404:
                raise

    with concurrent.futures.ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(one, names))
    return len(names)


def _list_nodes(api) -> list[dict]:
    resp = api.list_node(label_selector=f"{MANAGED_LABEL}=true", _preload_content=False)
    return json.loads(resp.data).get("items", [])


def _is_ready(node: dict) -> bool:
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return cond.get("status") == "True"
    return False


def wait_ready(api, expected: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    ready = 0
    while True:
        ready = sum(1 for n in _list_nodes(api) if _is_ready(n))
        if ready >= expected:
            return ready
        if time.monotonic() > deadline:
            raise SystemExit(f"make_nodes: only {ready}/{expected} simulated nodes Ready after {timeout:.0f}s")
        time.sleep(1.0 if expected < 100 else 3.0)


def summary(nodes: list[dict]) -> str:
    by_group: dict[str, list[dict]] = {}
    for n in nodes:
        by_group.setdefault(n["metadata"]["labels"][GROUP_LABEL], []).append(n)
    lines = []
    for group, members in by_group.items():
        labels = members[0]["metadata"]["labels"]
        gpus = members[0]["status"]["capacity"].get("nvidia.com/gpu", "0")
        product = labels.get("nvidia.com/gpu.product", "cpu-only")
        lines.append(f"  {group}: {len(members)} x {gpus} x {product}")
    total_gpus = sum(int(n["status"]["capacity"].get("nvidia.com/gpu", "0")) for n in nodes)
    lines.append(f"  total: {len(nodes)} nodes, {total_gpus} GPUs")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", help="admin kubeconfig of the sim cluster")
    parser.add_argument("--profile", default="default", help="profile name or YAML path")
    parser.add_argument("--threads", type=int, default=16, help="parallel API calls")
    parser.add_argument("--kubelet-version", default="", help="nodeInfo.kubeletVersion to report")
    parser.add_argument("--wait", type=float, default=0, help="seconds to wait for all nodes Ready")
    parser.add_argument("--dry-run", action="store_true", help="print the node summary and exit")
    parser.add_argument("--print-json", action="store_true", help="with --dry-run: print manifests")
    parser.add_argument("--delete", action="store_true", help="delete all simulated nodes")
    args = parser.parse_args(argv)

    nodes = build_nodes(load_profile(args.profile), args.kubelet_version)
    if args.dry_run:
        if args.print_json:
            json.dump(nodes, sys.stdout, indent=1)
            print()
        else:
            print(f"profile {args.profile}:\n{summary(nodes)}")
        return 0
    if not args.kubeconfig:
        parser.error("--kubeconfig is required unless --dry-run")

    api = _api(args.kubeconfig, args.threads)
    if args.delete:
        print(f"deleted {delete_nodes(api, args.threads)} simulated nodes")
        return 0
    start = time.monotonic()
    created, existing = create_nodes(api, nodes, args.threads)
    print(
        f"nodes: {created} created, {existing} already present "
        f"({time.monotonic() - start:.1f}s, profile {args.profile})\n{summary(nodes)}"
    )
    if args.wait > 0:
        ready = wait_ready(api, len(nodes), args.wait)
        print(f"nodes Ready: {ready}/{len(nodes)} ({time.monotonic() - start:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
