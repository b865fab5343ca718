"""Render the platform roles (gpu_operator; model_cache, whose built objects are written as the deploy writes them) and check every manifest.

Runs ansible-playbook in render mode (gpuinfer_render_dir): nothing reaches a cluster.
Every Kubernetes object written is validated offline against the OpenAPI schema of the
newest Kubernetes release kubernetes-validate bundles, in strict mode (unknown fields fail).
"""
import os
import subprocess
import sys

import kubernetes_validate
import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, REPO)

sys.path.insert(0, os.path.join(REPO, "collections"))

from ansible_collections.gpuinfer.serving.plugins.module_utils.plan.layout import replica_layout  # noqa: E402
from tests.contracts import check as contracts  # noqa: E402

PLAYBOOK_BIN = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
K8S_VERSION = kubernetes_validate.latest_version()
GIB = 1024 ** 3

TEST_HF_TOKEN = "hf_RenderTestTokenDoNotLeak0123456789"
TEST_NGC_KEY = "nvapi-RenderTestNgcKeyDoNotLeak987654321"

# A 70B model in bf16 served by two replicas of TP=8 on one node each.
PLAN_MULTI_REPLICA = {
    "model": {"id": "llama-3.1-70b-instruct", "hf_id": "meta-llama/Llama-3.1-70B-Instruct",
              "architecture": "LlamaForCausalLM", "dtype": "bfloat16"},
    "params": 70553706496,
    "weights_bytes": 141107412992,
    "plan": {"tensor_parallel_size": 8, "pipeline_parallel_size": 1, "nodes": 1, "gpus_per_node": 8,
             "gpus_per_replica": 8, "replicas": 2, "gpu": "H100-80GB", "layout": replica_layout(8, 1, 1, 8)},
}
# An 8B model on one GPU, one replica.
PLAN_SINGLE = {
    "model": {"id": "llama-3.1-8b-instruct", "hf_id": "meta-llama/Llama-3.1-8B-Instruct"},
    "params": 8030261248,
    "weights_bytes": 16060522496,
    "plan": {"tensor_parallel_size": 1, "pipeline_parallel_size": 1, "nodes": 1, "gpus_per_node": 1,
             "gpus_per_replica": 1, "replicas": 1, "layout": replica_layout(1)},
}
# 405B over two nodes: TP 8 x PP 2.
PLAN_MULTI_NODE = {
    "model": {"id": "llama-3.1-405b-instruct", "hf_id": "meta-llama/Llama-3.1-405B-Instruct"},
    "params": 405853388800,
    "weights_bytes": 811706777600,
    "plan": {"tensor_parallel_size": 8, "pipeline_parallel_size": 2, "nodes": 2, "gpus_per_node": 8,
             "gpus_per_replica": 16, "replicas": 1, "layout": replica_layout(8, 2, 2, 8)},
}


def run_role(tmp_path, role, extra_vars, inventory=None, verbosity=None):
    """Render `role` into tmp_path/render; return (CompletedProcess, render dir)."""
    render_dir = tmp_path / "render"
    playbook = tmp_path / "play.yml"
    # model_cache builds its objects and creates nothing (gpuinfer.serving.deploy writes them): its output,
    # model_cache_files, is written here as the deploy would, one file per entry.
    written = [{
        "name": "Write the objects the role built",
        "ansible.builtin.copy": {
            "dest": str(render_dir) + "/{{ item.name }}.yaml",
            "mode": "0644",
            "content": "{{ item.objects | map('ansible.builtin.to_nice_yaml') | join('---\n') }}",
        },
        "loop": "{{ model_cache_files }}",
    }] if role == "model_cache" else []
    if written:
        render_dir.mkdir()
    playbook.write_text(yaml.safe_dump([{
        "name": "render " + role,
        "hosts": "localhost",
        "gather_facts": False,
        "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
        "roles": ["gpuinfer.serving." + role],
        "post_tasks": written + [{
            "name": "Write the facts the role published",
            "ansible.builtin.copy": {
                "dest": str(tmp_path / "facts.json"),
                "mode": "0644",
                "content": "{{ {'pvc': model_cache_pvc_name | default(None), 'mount': model_cache_mount_path | default(None),"
                           " 'hf': model_cache_hf_token_secret | default(None), 'ngc': model_cache_ngc_secret | default(None),"
                           " 'pull': model_cache_pull_secret | default(None), 'shm': model_cache_shm_size | default(None)}"
                           " | to_json }}",
            },
        }],
    }]))
    variables = dict(extra_vars, gpuinfer_render_dir=str(render_dir))
    vars_file = tmp_path / "vars.yml"
    vars_file.write_text(yaml.safe_dump(variables))
    inventory_file = tmp_path / "inventory.yml"
    inventory_file.write_text(yaml.safe_dump(inventory or {"all": {"hosts": {"localhost": {"ansible_connection": "local"}}}}))
    command = [PLAYBOOK_BIN, "-i", str(inventory_file), str(playbook), "-e", "@" + str(vars_file)]
    if verbosity:
        command.append("-" + "v" * verbosity)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, "collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_FORCE_COLOR="0")
    result = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    return result, render_dir


def ok(result):
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    return result


def load_manifests(render_dir, name):
    path = render_dir / name
    assert path.is_file(), "%s was not rendered (have: %s)" % (name, sorted(os.listdir(render_dir)))
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def validate_all(render_dir):
    """Validate every Kubernetes manifest in the folder; return the objects by kind."""
    objects = {}
    manifest_files = [name for name in sorted(os.listdir(render_dir))
                      if name.endswith(".yaml") and name != "gpu-operator-values.yaml"]
    assert manifest_files
    for name in manifest_files:
        for obj in load_manifests(render_dir, name):
            try:
                kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail("%s %s/%s is not valid for Kubernetes %s: %s at %s" % (
                    name, obj.get("kind"), obj.get("metadata", {}).get("name"), K8S_VERSION,
                    exc.message, "/".join(str(p) for p in exc.path)))
            objects.setdefault(obj["kind"], []).append(obj)
    return objects


def assert_no_secret_anywhere(render_dir, result, *values):
    for value in values:
        assert value not in result.stdout and value not in result.stderr, "secret value in the Ansible output"
        for root, _dirs, files in os.walk(render_dir):
            for name in files:
                with open(os.path.join(root, name), encoding="utf-8") as handle:
                    assert value not in handle.read(), "secret value written to %s" % name


def assert_labels(obj, name):
    labels = obj["metadata"]["labels"]
    assert labels["app.kubernetes.io/managed-by"] == "gpuinfer.serving"
    assert labels["app.kubernetes.io/part-of"] == "gpuinfer-serving"
    assert labels["app.kubernetes.io/name"] == name


def parse_quantity(quantity):
    factors = {"Ki": 1024, "Mi": 1024 ** 2, "Gi": GIB, "Ti": 1024 ** 4, "K": 1000, "k": 1000, "M": 10 ** 6,
               "G": 10 ** 9, "T": 10 ** 12}
    for suffix in sorted(factors, key=len, reverse=True):
        if quantity.endswith(suffix):
            return float(quantity[: -len(suffix)]) * factors[suffix]
    return float(quantity)


def read_facts(tmp_path):
    return yaml.safe_load((tmp_path / "facts.json").read_text())


# --------------------------------------------------------------------------- gpu_operator


def test_gpu_operator_preinstalled_driver_on_k3s(tmp_path):
    result, render_dir = run_role(tmp_path, "gpu_operator", {
        "gpu_operator_driver_preinstalled": True,
        "gpu_operator_container_runtime": "k3s",
        "gpu_operator_mig_strategy": "mixed",
        "gpu_operator_nfd_enabled": False,
        "gpu_operator_extra_values": {"devicePlugin": {"config": {"name": "time-slicing", "default": "any"}},
                                      "driver": {"rdma": {"enabled": True}}},
    })
    ok(result)
    objects = validate_all(render_dir)
    assert list(objects) == ["Namespace"]
    namespace = objects["Namespace"][0]
    assert namespace["metadata"]["name"] == "gpu-operator"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "privileged"
    assert_labels(namespace, "gpu-operator")

    values = yaml.safe_load((render_dir / "gpu-operator-values.yaml").read_text())
    assert values == {
        "driver": {"enabled": False, "rdma": {"enabled": True}},
        "toolkit": {"enabled": True, "env": [
            {"name": "CONTAINERD_CONFIG", "value": "/var/lib/rancher/k3s/agent/etc/containerd/config.toml"},
            {"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"},
            {"name": "RUNTIME_CONFIG_SOURCE", "value": "file=/var/lib/rancher/k3s/agent/etc/containerd/config.toml"},
        ]},
        "mig": {"strategy": "mixed"},
        # auto leaves serviceMonitor.enabled to the chart (true in v26.7.0; the operator creates the
        # ServiceMonitor only where its CRD exists), so a GitOps render behaves like a live install.
        "dcgmExporter": {"enabled": True},
        "cdi": {"enabled": True},
        "nfd": {"enabled": False},
        "daemonsets": {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
        "devicePlugin": {"config": {"name": "time-slicing", "default": "any"}},
    }
    helm = (render_dir / "gpu-operator-helm.txt").read_text()
    assert "helm repo add nvidia https://helm.ngc.nvidia.com/nvidia" in helm
    assert "helm upgrade --install gpu-operator nvidia/gpu-operator" in helm
    assert "--version v26.7.0" in helm and "--namespace gpu-operator" in helm


def test_gpu_operator_keys_exist_in_the_pinned_chart(tmp_path):
    """Every key the role sets is a key of the v26.7.0 chart's values.yaml (tests/contracts/gpu_operator)."""
    result, render_dir = run_role(tmp_path, "gpu_operator", {
        "gpu_operator_driver_version": "580.126.20",
        "gpu_operator_dcgm_service_monitor": True,
    })
    ok(result)
    values = yaml.safe_load((render_dir / "gpu-operator-values.yaml").read_text())
    assert not contracts.gpu_operator_violations(values)
    # The check can fail: a key the chart does not have is named.
    assert contracts.gpu_operator_violations({"operator": {"defaultRuntime": "containerd"}}) == [
        "values key operator.defaultRuntime is not in gpu-operator v26.7.0 values.yaml"]
    assert values["driver"] == {"enabled": True, "version": "580.126.20"}
    assert values["dcgmExporter"]["serviceMonitor"]["enabled"] is True
    # The containerd preset spells out the documented defaults.
    assert [entry["name"] for entry in values["toolkit"]["env"]] == [
        "CONTAINERD_CONFIG", "CONTAINERD_SOCKET", "RUNTIME_CONFIG_SOURCE"]


def test_gpu_operator_detects_driver_from_host_facts(tmp_path):
    inventory = {"all": {
        "hosts": {"localhost": {"ansible_connection": "local"}},
        "children": {"gpu_hosts": {"hosts": {
            "gpu-a": {"ansible_connection": "local", "gpu_host": {"driver_version": "570.172.08"}},
            "gpu-b": {"ansible_connection": "local"},
        }}},
    }}
    result, render_dir = run_role(tmp_path, "gpu_operator", {
        "gpu_operator_container_runtime": "rke2",
        "gpu_operator_toolkit_env": [{"name": "CONTAINERD_RUNTIME_CLASS", "value": "nvidia"},
                                     {"name": "CONTAINERD_SET_AS_DEFAULT", "value": True}],
    }, inventory=inventory)
    ok(result)
    assert "570.172.08" in result.stdout
    values = yaml.safe_load((render_dir / "gpu-operator-values.yaml").read_text())
    assert values["driver"] == {"enabled": False}
    assert values["toolkit"]["env"] == [
        {"name": "CONTAINERD_SOCKET", "value": "/run/k3s/containerd/containerd.sock"},
        {"name": "CONTAINERD_RUNTIME_CLASS", "value": "nvidia"},
        # A YAML boolean becomes the string the container env needs.
        {"name": "CONTAINERD_SET_AS_DEFAULT", "value": "true"},
    ]


def test_gpu_operator_local_chart_needs_no_repository(tmp_path):
    chart = os.path.join(REPO, "tests/fixtures/charts/gpu-operator")
    result, render_dir = run_role(tmp_path, "gpu_operator", {"gpu_operator_chart_ref": chart,
                                                             "gpu_operator_driver_preinstalled": False})
    ok(result)
    helm = (render_dir / "gpu-operator-helm.txt").read_text()
    assert "helm repo add" not in helm and "--version" not in helm
    assert "helm upgrade --install gpu-operator %s" % chart in helm
    assert yaml.safe_load((render_dir / "gpu-operator-values.yaml").read_text())["driver"]["enabled"] is True


@pytest.mark.parametrize("variables, message", [
    ({"gpu_operator_chart_ref": "/nonexistent/chart"}, "gpu_operator_chart_ref is '/nonexistent/chart'"),
    ({"gpu_operator_mig_strategy": "all"}, "gpu_operator_mig_strategy=all: must be one of: none, single, mixed"),
    ({"gpu_operator_container_runtime": "docker"}, "gpu_operator_container_runtime=docker: must be one of"),
    ({"gpu_operator_driver_preinstalled": "maybe"}, "gpu_operator_driver_preinstalled=maybe: must be one of"),
])
def test_gpu_operator_rejects_bad_input(tmp_path, variables, message):
    result, render_dir = run_role(tmp_path, "gpu_operator", variables)
    assert result.returncode != 0
    assert message in " ".join(result.stdout.split())
    assert not (render_dir / "gpu-operator-values.yaml").exists()


# --------------------------------------------------------------------------- model_cache


def test_model_cache_vllm_multi_replica(tmp_path):
    result, render_dir = run_role(tmp_path, "model_cache", {
        "gpuinfer_plan": PLAN_MULTI_REPLICA,
        "gpuinfer_name": "llama70b",
        "gpuinfer_namespace": "serving",
        "model_cache_hf_token": TEST_HF_TOKEN,
        "model_cache_revision": "1605565b47bb9346c5515c34102e054115b4f98b",
        "model_cache_storage_class": "nfs-client",
    }, verbosity=3)
    ok(result)
    assert_no_secret_anywhere(render_dir, result, TEST_HF_TOKEN)
    objects = validate_all(render_dir)
    assert "Secret" not in objects
    assert sorted(objects) == ["Job", "Namespace", "PersistentVolumeClaim"]

    pvc = objects["PersistentVolumeClaim"][0]
    assert_labels(pvc, "model-cache")
    assert pvc["metadata"]["name"] == "llama70b-model-cache"
    assert pvc["metadata"]["namespace"] == "serving"
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["storageClassName"] == "nfs-client"
    size = parse_quantity(pvc["spec"]["resources"]["requests"]["storage"])
    assert size >= PLAN_MULTI_REPLICA["weights_bytes"] * 1.25
    assert pvc["spec"]["resources"]["requests"]["storage"] == "165Gi"

    job = objects["Job"][0]
    assert_labels(job, "model-cache")
    pod = job["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert pod["securityContext"]["fsGroup"] == 1000
    container = pod["containers"][0]
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["command"] == ["hf", "download"]
    assert container["args"] == ["meta-llama/Llama-3.1-70B-Instruct", "--revision",
                                 "1605565b47bb9346c5515c34102e054115b4f98b", "--cache-dir", "/models"]
    env = {item["name"]: item for item in container["env"]}
    # The token reaches the pod only through a secretKeyRef.
    assert env["HF_TOKEN"] == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "llama70b-hf-token", "key": "HF_TOKEN"}}}
    assert all("value" not in item for item in container["env"] if item["name"] == "HF_TOKEN")
    assert pod["volumes"][0]["persistentVolumeClaim"]["claimName"] == "llama70b-model-cache"
    assert container["volumeMounts"][0]["mountPath"] == "/models"

    assert read_facts(tmp_path) == {"pvc": "llama70b-model-cache", "mount": "/models", "hf": "llama70b-hf-token",
                                    "ngc": "", "pull": "", "shm": "5Gi"}


def test_model_cache_single_gpu_defaults_to_read_write_once(tmp_path):
    result, render_dir = run_role(tmp_path, "model_cache", {"gpuinfer_plan": PLAN_SINGLE, "model_cache_download": False})
    ok(result)
    objects = validate_all(render_dir)
    assert "Job" not in objects
    pvc = objects["PersistentVolumeClaim"][0]
    assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert "storageClassName" not in pvc["spec"]
    assert parse_quantity(pvc["spec"]["resources"]["requests"]["storage"]) >= PLAN_SINGLE["weights_bytes"]
    assert read_facts(tmp_path)["shm"] == "1Gi"


def test_model_cache_nim_multi_node_with_existing_secrets(tmp_path):
    result, render_dir = run_role(tmp_path, "model_cache", {
        "gpuinfer_plan": PLAN_MULTI_NODE,
        "gpuinfer_name": "llama405b",
        "gpuinfer_engine": "nim",
        "model_cache_download": True,
        "model_cache_nim_image": "nvcr.io/nim/meta/llama-3.1-405b-instruct:1.3.0",
        "model_cache_nim_profiles": ["8bb3b94e326789381bbf287e54057005a9250e3abbad0b1702a70222529fcd17"],
        "model_cache_ngc_existing_secret": "ngc-api",
        "model_cache_pull_existing_secret": "ngc-pull",
        "model_cache_size": "1000Gi",
        "model_cache_node_memory_bytes": 2 * 1024 ** 4,
    })
    ok(result)
    objects = validate_all(render_dir)
    pvc = objects["PersistentVolumeClaim"][0]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    assert pvc["spec"]["resources"]["requests"]["storage"] == "1000Gi"
    pod = objects["Job"][0]["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == ["download-to-cache"]
    assert container["args"] == ["--profiles", "8bb3b94e326789381bbf287e54057005a9250e3abbad0b1702a70222529fcd17"]
    env = {item["name"]: item for item in container["env"]}
    assert env["NGC_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "ngc-api", "key": "NGC_API_KEY"}
    assert env["NIM_CACHE_PATH"]["value"] == "/models"
    assert pod["imagePullSecrets"] == [{"name": "ngc-pull"}]
    assert pod["securityContext"]["runAsUser"] == 1000 and pod["securityContext"]["fsGroup"] == 1000
    # TP 8 x PP 2 over two nodes: 8 ranks (one stage) per pod.
    assert read_facts(tmp_path) == {"pvc": "llama405b-model-cache", "mount": "/models", "hf": "",
                                    "ngc": "ngc-api", "pull": "ngc-pull", "shm": "5Gi"}


def test_model_cache_ngc_key_never_rendered(tmp_path):
    result, render_dir = run_role(tmp_path, "model_cache", {
        "gpuinfer_plan": PLAN_SINGLE,
        "gpuinfer_engine": "nim",
        "model_cache_download": True,
        "model_cache_nim_image": "nvcr.io/nim/meta/llama-3.1-8b-instruct:1.3.0",
        "model_cache_ngc_api_key": TEST_NGC_KEY,
        "model_cache_hf_token": TEST_HF_TOKEN,
    }, verbosity=3)
    ok(result)
    assert_no_secret_anywhere(render_dir, result, TEST_NGC_KEY, TEST_HF_TOKEN)
    objects = validate_all(render_dir)
    assert "Secret" not in objects
    pod = objects["Job"][0]["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "llm-nvcr-pull"}]
    env = {item["name"]: item for item in pod["containers"][0]["env"]}
    assert env["NGC_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "llm-ngc-api"
    assert "Render mode never writes Secrets: create llm-hf-token" in " ".join(result.stdout.split())


def test_model_cache_existing_claim_is_not_created(tmp_path):
    result, render_dir = run_role(tmp_path, "model_cache", {
        "gpuinfer_plan": PLAN_SINGLE, "model_cache_existing_claim": "shared-weights", "model_cache_create_namespace": False,
    })
    ok(result)
    objects = validate_all(render_dir)
    assert sorted(objects) == ["Job"]
    assert objects["Job"][0]["spec"]["template"]["spec"]["volumes"][0]["persistentVolumeClaim"]["claimName"] == "shared-weights"
    assert read_facts(tmp_path)["pvc"] == "shared-weights"


@pytest.mark.parametrize("variables, message", [
    ({"model_cache_size": "100Gi"},
     "model_cache_size=100Gi (107374182400 bytes) is smaller than the model weights, 141107412992 bytes"),
    ({"model_cache_size": "lots"}, "model_cache_size=lots: must be a Kubernetes quantity such as 500Gi"),
    ({"model_cache_access_mode": "ReadWriteAll"}, "model_cache_access_mode=ReadWriteAll: must be one of"),
    ({"model_cache_engine": "tgi"}, "model_cache_engine=tgi (nim|sglang|vllm)"),
    ({"gpuinfer_plan": {"plan": {"tensor_parallel_size": 1}}}, "plan weights_bytes=missing"),
    ({"gpuinfer_engine": "nim", "model_cache_download": True}, "The NIM download Job needs model_cache_nim_image"),
    ({"model_cache_hf_token": TEST_HF_TOKEN, "model_cache_hf_token_existing_secret": "hf"},
     "Give model_cache_hf_token or model_cache_hf_token_existing_secret"),
])
def test_model_cache_rejects_bad_input(tmp_path, variables, message):
    result, render_dir = run_role(tmp_path, "model_cache", dict({"gpuinfer_plan": PLAN_MULTI_REPLICA}, **variables))
    assert result.returncode != 0
    assert message in " ".join(result.stdout.split()), result.stdout[-3000:]
    assert not render_dir.exists() or not os.listdir(render_dir)
    assert TEST_HF_TOKEN not in result.stdout
