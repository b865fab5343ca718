"""The execution environment, built by ansible-builder and run by podman against the simulated cluster.

1. The image holds this checkout's gpuinfer.serving, kubernetes.core, the kubernetes client and helm.
2. playbooks/site.yml runs inside it with ansible-runner (as AWX runs a job), --network=host, and the
   cluster reached only through K8S_AUTH_HOST / K8S_AUTH_API_KEY / K8S_AUTH_SSL_CA_CERT (AWX's
   bearer-token credential): no kubeconfig. The result is asserted like the e2e deploy test.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from ee_helpers import REPO_ROOT, assert_ok, e2e, make_private_data_dir, run_in_ee

pytestmark = pytest.mark.ee

NOTES = REPO_ROOT / "out" / "ee"


def in_image(image, *args, timeout=300):
    return subprocess.run([image.engine, "run", "--rm", image.tag, *args], capture_output=True, text=True, timeout=timeout)


def test_the_ee_holds_the_collections_the_client_and_helm(ee_image):
    listed = in_image(ee_image, "ansible-galaxy", "collection", "list", "--format", "json")
    assert listed.returncode == 0, listed.stderr
    collections = {}
    for path_entries in json.loads(listed.stdout).values():
        collections.update({name: meta["version"] for name, meta in path_entries.items()})
    galaxy = (REPO_ROOT / "collections" / "ansible_collections" / "gpuinfer" / "serving" / "galaxy.yml").read_text()
    version = next(line.split(":", 1)[1].strip() for line in galaxy.splitlines() if line.startswith("version:"))
    assert collections.get("gpuinfer.serving") == version
    assert "kubernetes.core" in collections
    plain = in_image(ee_image, "ansible-galaxy", "collection", "list")
    NOTES.mkdir(parents=True, exist_ok=True)
    (NOTES / "collection-list.txt").write_text(plain.stdout, encoding="utf-8")

    helm = in_image(ee_image, "helm", "version", "--short")
    assert helm.returncode == 0 and helm.stdout.startswith("v3."), helm.stdout + helm.stderr
    client = in_image(ee_image, "python3", "-c", "import kubernetes, jsonpatch, yaml; print(kubernetes.__version__)")
    assert client.returncode == 0, client.stderr
    doc = in_image(ee_image, "ansible-doc", "gpuinfer.serving.gpu_sizing")
    assert doc.returncode == 0 and "gpu_sizing" in doc.stdout, doc.stderr
    # The build host's pip configuration does not stay in the image.
    leftover = in_image(ee_image, "sh", "-c", "ls /etc/gpuinfer-ee-build 2>/dev/null; echo PIP_CONFIG_FILE=$PIP_CONFIG_FILE")
    assert leftover.stdout.strip() == "PIP_CONFIG_FILE=/dev/null", leftover.stdout


def k8s_auth_env(bearer):
    """AWX's bearer-token credential: env vars, the CA as a file in the job's private data dir."""
    return {
        "K8S_AUTH_HOST": bearer.host,
        "K8S_AUTH_API_KEY": bearer.token,
        "K8S_AUTH_SSL_CA_CERT": "/runner/env/k8s-ca.crt",
    }


def test_site_yml_in_the_ee_deploys_to_the_sim_cluster_with_k8s_auth_env_only(ee_image, sim_cluster, sim_bearer, tmp_path):
    namespace = "ee-llama70b"
    pdd = make_private_data_dir(tmp_path / "pdd", inventory=REPO_ROOT / "inventories" / "llama70b-tp8")
    extravars = {
        "gpuinfer_namespace": namespace,
        "model_cache_hf_token": e2e.HF_TOKEN,
        "model_cache_hf_token_existing_secret": "",
        # The simulated nodes run no containers: nothing would answer /v1/models (inventories/sim does the same).
        "inference_service_smoke_test": False,
        # The default, a relative out/<name>, lands in the collection's (read-only) playbooks folder;
        # the project folder persists between the two runs, as a checkout does.
        "plan_output_dir": "/runner/project/out/llama-3-1-70b",
    }
    assert "gpuinfer_kubeconfig" not in extravars
    env = k8s_auth_env(sim_bearer)
    files = {"k8s-ca.crt": sim_bearer.ca_pem}
    try:
        first = run_in_ee(ee_image, pdd, "playbooks/site.yml", extravars=extravars, env=env, files=files, ident="site-1")
        assert_ok(first)
        assert first.recap["changed"] > 0
        # The collection that ran is the EE's installed one (the project holds no collections/).
        assert "included: /usr/share/ansible/collections/ansible_collections/gpuinfer/serving/" in first.stdout

        engine = e2e.wait_for_pods(sim_cluster, namespace, "app.kubernetes.io/name=vllm,app.kubernetes.io/instance=llama-3-1-70b", 1)
        assert len(engine) == 1
        pod = engine[0]
        assert e2e.gpu_request(pod) == 8
        assert e2e.node(sim_cluster, pod["spec"]["nodeName"])["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
        args = pod["spec"]["containers"][0]["args"]
        assert "--tensor-parallel-size=8" in args and "--pipeline-parallel-size=1" in args
        env_by_name = {e["name"]: e for e in pod["spec"]["containers"][0]["env"]}
        assert env_by_name["HF_TOKEN"]["valueFrom"]["secretKeyRef"]["key"] == "HF_TOKEN"
        assert e2e.HF_TOKEN not in json.dumps(pod)
        assert e2e.HF_TOKEN not in first.stdout
        assert sim_bearer.token not in first.stdout

        service = e2e.kubectl_json(sim_cluster, "get", "service", "-n", namespace, "llama-3-1-70b")
        selected = e2e.pods(sim_cluster, namespace, ",".join("%s=%s" % kv for kv in service["spec"]["selector"].items()))
        assert [p["metadata"]["name"] for p in selected] == [pod["metadata"]["name"]]
        claim = e2e.kubectl_json(sim_cluster, "get", "pvc", "-n", namespace, "llama-3-1-70b-model-cache")
        assert claim["status"]["phase"] == "Bound"

        before = e2e.snapshot(sim_cluster, namespace)
        second = run_in_ee(ee_image, pdd, "playbooks/site.yml", extravars=extravars, env=env, files=files, ident="site-2")
        assert_ok(second)
        assert second.recap["changed"] == 0, second.stdout[-6000:]
        assert e2e.snapshot(sim_cluster, namespace) == before
        print(f"\nsite.yml in the EE: first run {first.seconds:.1f} s, idempotent re-run {second.seconds:.1f} s")
    finally:
        down = run_in_ee(ee_image, pdd, "playbooks/teardown.yml", extravars={**extravars, "gpuinfer_teardown_cache": True},
                         env=env, files=files, ident="teardown")
        sim_cluster.kubectl("delete", "namespace", namespace, "--wait=false", check=False)
    assert_ok(down)
