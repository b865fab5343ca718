"""Render the vllm, nim and inference_service roles for each seed scenario and check every manifest.

Each scenario runs tests/unit/playbooks/render_workload.yml in render mode
(gpuinfer_render_dir), then validates every object: core kinds against the
Kubernetes OpenAPI schema (kubernetes_validate, strict), CRD kinds against the
pinned CRD's openAPIV3Schema (tests/schemas/crds.py), and asserts what the
issue requires: GPU requests and engine flags equal the plan, memory-backed
sized /dev/shm, secrets by reference only, startup probes budgeted, LWS group
size and restart policy, Service selecting the leader, autoscaler targets.
"""

import os
import pathlib
import shlex
import subprocess
import sys

import jsonschema
import kubernetes_validate
import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "collections"))
sys.path.insert(0, str(ROOT))

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.probes import startup_probe_budget  # noqa: E402
from ansible_collections.gpuinfer.serving.plugins.modules import gpu_sizing  # noqa: E402
from tests.contracts import check as contracts  # noqa: E402
from tests.schemas import crds  # noqa: E402

PLAYBOOK = ROOT / "tests" / "unit" / "playbooks" / "render_workload.yml"
PLANS = ROOT / "tests" / "fixtures" / "plans"
PLAN_70B = PLANS / "llama70b-tp8-a100.yml"
PLAN_405B = PLANS / "llama405b-tp8-pp2-h100.yml"
AWQ_CONFIG = ROOT / "tests" / "fixtures" / "configs" / "Meta-Llama-3.1-70B-Instruct-AWQ-INT4.json"


def plan_awq(directory):
    """A plan made now, by gpu_sizing, for a pre-quantized AWQ checkpoint known only by its config.json."""
    result = gpu_sizing.size({"model": str(AWQ_CONFIG), "hub_id": "hugging-quants/Meta-Llama-3.1-70B-Instruct-AWQ-INT4",
                              "gpu": "A100-80GB", "max_model_len": 32768, "replicas": 1, "max_nodes": 1})
    path = directory / "plan-awq.yml"
    path.write_text(yaml.safe_dump({"gpuinfer_plan": result}))
    return path
K8S_VERSION = kubernetes_validate.latest_version()
# Would leak if a role ever copied a token into a manifest.
SECRET_SENTINEL = "hf_SENTINEL_token_value_never_rendered"
SECRETS = ["-e", "model_cache_hf_token_secret=hf-token", "-e", "model_cache_ngc_secret=ngc-api",
           "-e", "model_cache_pull_secret=nvcr-pull"]

SCENARIOS = {
    "vllm-70b-tp8": (PLAN_70B, ["-e", "gpuinfer_engine=vllm", "-e", "model_cache_shm_size=32Gi"]),
    "vllm-405b-mp": (PLAN_405B, ["-e", "gpuinfer_engine=vllm", "-e", "vllm_launch_mode=mp",
                                 "-e", "inference_common_rdma_enabled=true"]),
    "vllm-405b-exclusive": (PLAN_405B, ["-e", "gpuinfer_engine=vllm",
                                        "-e", "inference_common_lws_exclusive_topology=nvidia.com/gpu.clique"]),
    "vllm-70b-awq": (plan_awq, ["-e", "gpuinfer_engine=vllm"]),
    "nim-70b": (PLAN_70B, ["-e", "gpuinfer_engine=nim", "-e", "inference_service_monitoring=annotations"]),
    "nim-405b": (PLAN_405B, ["-e", "gpuinfer_engine=nim", "-e", "inference_service_autoscaling=keda"]),
    "vllm-70b-hpa-ingress": (PLAN_70B, ["-e", "gpuinfer_engine=vllm", "-e", "inference_service_autoscaling=hpa",
                                        "-e", "inference_service_expose=ingress",
                                        "-e", "inference_service_host=llm.example.com",
                                        "-e", "inference_service_tls_secret=llm-tls",
                                        "-e", "inference_common_spare_gpus=8"]),
    "vllm-405b-keda-httproute": (PLAN_405B, ["-e", "gpuinfer_engine=vllm", "-e", "inference_service_autoscaling=keda",
                                             "-e", "inference_service_expose=httproute",
                                             "-e", "inference_service_gateway_name=inference-gw",
                                             "-e", "inference_service_host=llm.example.com"]),
    "vllm-405b-hpa": (PLAN_405B, ["-e", "gpuinfer_engine=vllm", "-e", "inference_service_autoscaling=hpa"]),
    "sglang-70b-hpa": (PLAN_70B, ["-e", "gpuinfer_engine=sglang", "-e", "inference_service_autoscaling=hpa"]),
    "sglang-405b-keda": (PLAN_405B, ["-e", "gpuinfer_engine=sglang", "-e", "inference_service_autoscaling=keda",
                                     "-e", "inference_common_rdma_enabled=true"]),
}


def run_playbook(render_dir, plan_file, extra):
    command = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), str(PLAYBOOK), "-e", "@%s" % plan_file,
               "-e", "gpuinfer_render_dir=%s" % render_dir] + extra
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", HF_TOKEN=SECRET_SENTINEL, NGC_API_KEY=SECRET_SENTINEL)
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=env, timeout=600, check=False)


def load_plan(plan_file):
    return yaml.safe_load(plan_file.read_text())["gpuinfer_plan"]


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def rendered(request, tmp_path_factory):
    plan_file, extra = SCENARIOS[request.param]
    render_dir = tmp_path_factory.mktemp(request.param)
    if callable(plan_file):
        plan_file = plan_file(tmp_path_factory.mktemp(request.param + "-plan"))
    result = run_playbook(render_dir, plan_file, SECRETS + extra)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    objects, cache_objects = [], []
    for path in sorted(render_dir.glob("*.yaml")):
        # model-cache.yaml and model-download.yaml: the model_cache role's objects, which the deploy writes beside them.
        (cache_objects if path.name.startswith("model-") else objects).extend(
            doc for doc in yaml.safe_load_all(path.read_text()) if doc)
    return {"name": request.param, "dir": render_dir, "objects": objects, "cache_objects": cache_objects,
            "plan": load_plan(plan_file), "args": extra}


def by_kind(objects, kind):
    return [obj for obj in objects if obj["kind"] == kind]


def only(objects, kind):
    found = by_kind(objects, kind)
    assert len(found) == 1, "expected one %s, got %d" % (kind, len(found))
    return found[0]


def workload_of(objects):
    workloads = by_kind(objects, "Deployment") + by_kind(objects, "LeaderWorkerSet")
    assert len(workloads) == 1
    return workloads[0]


def pod_templates(workload):
    """(role, pod template) pairs: ('leader', ...) first."""
    if workload["kind"] == "Deployment":
        return [("leader", workload["spec"]["template"])]
    template = workload["spec"]["leaderWorkerTemplate"]
    return [("leader", template["leaderTemplate"]), ("worker", template["workerTemplate"])]


def env_of(container):
    return {item["name"]: item for item in container.get("env", [])}


def flag_values(args):
    values = {}
    for arg in args:
        if arg.startswith("--") and "=" in arg:
            key, value = arg.split("=", 1)
            values[key] = value
    return values


def engine_of(scenario):
    return scenario["name"].split("-")[0]


# --- Schema validation ------------------------------------------------------------------


def test_every_manifest_validates_against_its_schema(rendered):
    assert rendered["objects"], "nothing rendered"
    for obj in rendered["objects"]:
        if crds.has_schema(obj["apiVersion"], obj["kind"]):
            schema = crds.strict(crds.crd_schema(obj["apiVersion"], obj["kind"]))
            validator = jsonschema.validators.validator_for(schema, default=jsonschema.Draft7Validator)(schema)
            errors = sorted(validator.iter_errors(obj), key=lambda error: list(error.path))
            assert not errors, "%s %s: %s" % (obj["kind"], obj["metadata"]["name"],
                                               "; ".join("%s: %s" % (list(e.path), e.message) for e in errors))
        else:
            try:
                kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail("%s %s: %s" % (obj["kind"], obj["metadata"]["name"], exc.message))


def test_every_object_carries_the_collection_labels(rendered):
    for obj in rendered["objects"]:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "gpuinfer.serving"
        assert labels["app.kubernetes.io/part-of"] == "gpuinfer-serving"
        assert labels["app.kubernetes.io/instance"] == "llm"
        assert labels["app.kubernetes.io/name"] == engine_of(rendered)
    assert rendered["cache_objects"], "the cache objects were not rendered beside the engine's"
    for obj in rendered["cache_objects"]:
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/managed-by"] == "gpuinfer.serving"
        assert labels["app.kubernetes.io/instance"] == "llm"
        assert labels["app.kubernetes.io/name"] == "model-cache"


# --- Workload -------------------------------------------------------------------------------


def test_controller_matches_the_plan_layout(rendered):
    plan = rendered["plan"]["plan"]
    workload = workload_of(rendered["objects"])
    if plan["nodes"] == 1:
        assert workload["kind"] == "Deployment"
        assert workload["spec"]["replicas"] == plan["replicas"]
    else:
        assert workload["kind"] == "LeaderWorkerSet"
        assert workload["apiVersion"] == "leaderworkerset.x-k8s.io/v1"
        template = workload["spec"]["leaderWorkerTemplate"]
        assert template["size"] == plan["nodes"]
        assert template["restartPolicy"] == "RecreateGroupOnPodRestart"
        assert workload["spec"]["replicas"] == plan["replicas"]
        assert workload["spec"]["rolloutStrategy"]["rollingUpdateConfiguration"]["maxSurge"] == 0


def test_gpu_requests_equal_the_plan(rendered):
    plan = rendered["plan"]["plan"]
    per_pod = plan["tensor_parallel_size"] * plan["pipeline_parallel_size"] // plan["nodes"]
    assert per_pod == plan.get("gpus_per_pod", plan["gpus_per_node"])
    for _role, template in pod_templates(workload_of(rendered["objects"])):
        (container,) = template["spec"]["containers"]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == str(per_pod)
        assert container["resources"]["requests"]["nvidia.com/gpu"] == str(per_pod)


def test_pods_pinned_to_the_plan_gpu_and_tolerate_the_taint(rendered):
    plan = rendered["plan"]["plan"]
    for _role, template in pod_templates(workload_of(rendered["objects"])):
        spec = template["spec"]
        terms = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert terms == [{"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In",
                                                "values": plan["gpu_labels"]}]}]
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]


def test_shm_is_memory_backed_and_sized_and_cache_mounted(rendered):
    expected_shm = "32Gi" if "model_cache_shm_size=32Gi" in rendered["args"] else "16Gi"
    for _role, template in pod_templates(workload_of(rendered["objects"])):
        volumes = {volume["name"]: volume for volume in template["spec"]["volumes"]}
        mounts = {mount["mountPath"]: mount["name"] for mount in template["spec"]["containers"][0]["volumeMounts"]}
        assert mounts["/dev/shm"] in volumes
        assert volumes[mounts["/dev/shm"]]["emptyDir"] == {"medium": "Memory", "sizeLimit": expected_shm}
        # Without the model_cache role, NIM mounts the cache where NVIDIA's chart does.
        cache_path = "/model-store" if engine_of(rendered) == "nim" else "/models"
        assert volumes[mounts[cache_path]]["persistentVolumeClaim"]["claimName"] == "model-cache"


def test_startup_probe_budget_covers_download_and_load(rendered):
    model = rendered["plan"]
    required = startup_probe_budget(model["weights_bytes"], nodes=model["plan"]["nodes"])["required_seconds"]
    # Each engine's own endpoints (SGLang: /health answers once serving, /ready once taking requests).
    health, ready, live = {"nim": ("/v1/health/ready", "/v1/health/ready", "/v1/health/live"),
                           "sglang": ("/health", "/ready", "/health")}.get(engine_of(rendered), ("/health",) * 3)
    (leader,) = pod_templates(workload_of(rendered["objects"]))[0][1]["spec"]["containers"]
    startup = leader["startupProbe"]
    assert startup["httpGet"]["path"] == health
    assert startup["failureThreshold"] * startup["periodSeconds"] >= required
    # Weights of this size take far longer than the 30 s default budget to load.
    assert required > 600
    assert leader["readinessProbe"]["httpGet"]["path"] == ready
    assert leader["livenessProbe"]["httpGet"]["path"] == live


def test_secrets_only_by_reference(rendered):
    assert not by_kind(rendered["objects"], "Secret")
    for path in rendered["dir"].iterdir():
        assert SECRET_SENTINEL not in path.read_text(), path
    for _role, template in pod_templates(workload_of(rendered["objects"])):
        for container in template["spec"]["containers"]:
            for item in container.get("env", []):
                if any(word in item["name"] for word in ("TOKEN", "API_KEY", "PASSWORD")):
                    assert "value" not in item, item["name"]
                    assert set(item["valueFrom"]) == {"secretKeyRef"}, item["name"]


def test_disruption_budget_selects_the_workload_pods(rendered):
    pdb = only(rendered["objects"], "PodDisruptionBudget")
    selector = pdb["spec"]["selector"]["matchLabels"]
    for _role, template in pod_templates(workload_of(rendered["objects"])):
        assert selector.items() <= template["metadata"]["labels"].items()


def test_rollout_never_surges_without_spare_gpus(rendered):
    workload = workload_of(rendered["objects"])
    if workload["kind"] != "Deployment":
        return
    if "inference_common_spare_gpus=8" in rendered["args"]:
        assert workload["spec"]["strategy"] == {"type": "RollingUpdate",
                                                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    else:
        assert workload["spec"]["strategy"] == {"type": "Recreate"}


# --- Engines --------------------------------------------------------------------------------


def test_vllm_flags_equal_the_plan(rendered):
    if engine_of(rendered) != "vllm":
        pytest.skip("not a vLLM scenario")
    model, plan = rendered["plan"], rendered["plan"]["plan"]
    workload = workload_of(rendered["objects"])
    expected = {
        "--tensor-parallel-size": str(plan["tensor_parallel_size"]),
        "--pipeline-parallel-size": str(plan["pipeline_parallel_size"]),
        "--max-model-len": str(plan["max_model_len"]),
        "--gpu-memory-utilization": str(plan["gpu_memory_utilization"]),
        "--max-num-seqs": str(plan["max_num_seqs"]),
        "--max-num-batched-tokens": str(plan["max_num_batched_tokens"]),
        "--kv-cache-dtype": plan["kv_cache_dtype"],
        "--served-model-name": model["model"]["hf_id"],
        "--download-dir": "/models",
    }
    for role, template in pod_templates(workload):
        (container,) = template["spec"]["containers"]
        assert container["image"] == "vllm/vllm-openai:v0.34.0"
        env = env_of(container)
        assert env["VLLM_HOST_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "HF_TOKEN"}
        assert container["command"] == ["vllm", "serve"]
        args = container["args"]
        assert args[0] == model["model"]["hf_id"]
        flags = flag_values(args)
        for flag, value in expected.items():
            assert flags.get(flag) == value, (role, flag, flags.get(flag), value)
        # Only an online FP8 quantization gets the flag; a pre-quantized checkpoint carries its method.
        assert ("--quantization" in flags) == bool(plan.get("quantize_online"))
        if "vllm_args" in model and "checkpoint_dtype" in plan:
            # The plan report's flags are the pod's flags (one function builds both).
            assert set(model["vllm_args"]) <= set(args), set(model["vllm_args"]) - set(args)
        assert env["HF_HUB_CACHE"]["value"] == flags["--download-dir"]
        if workload["kind"] == "LeaderWorkerSet":
            assert flags["--nnodes"] == "$(LWS_GROUP_SIZE)"
            assert flags["--master-addr"] == "$(LWS_LEADER_ADDRESS)"
            assert flags["--node-rank"] == ("0" if role == "leader" else "$(LWS_WORKER_INDEX)")
            assert ("--headless" in args) == (role == "worker")


def test_sglang_arguments_equal_the_plan(rendered):
    if engine_of(rendered) != "sglang":
        pytest.skip("not an SGLang scenario")
    model, plan = rendered["plan"], rendered["plan"]["plan"]
    workload = workload_of(rendered["objects"])
    expected = {
        "--model-path": model["model"]["hf_id"],
        "--tp-size": str(plan["tensor_parallel_size"]),
        "--pp-size": str(plan["pipeline_parallel_size"]),
        "--context-length": str(plan["max_model_len"]),
        "--mem-fraction-static": str(plan["gpu_memory_utilization"]),
        "--max-running-requests": str(plan["max_num_seqs"]),
        "--chunked-prefill-size": str(plan["max_num_batched_tokens"]),
        "--served-model-name": model["model"]["hf_id"],
        "--download-dir": "/models",
        "--port": "8000",
    }
    for role, template in pod_templates(workload):
        (container,) = template["spec"]["containers"]
        assert container["image"] == "lmsysorg/sglang:v0.5.23"
        assert container["command"] == ["python3", "-m", "sglang.launch_server"]
        flags = flag_values(container["args"])
        for flag, value in expected.items():
            assert flags.get(flag) == value, (role, flag, flags.get(flag), value)
        assert "--enable-metrics" in container["args"]
        env = env_of(container)
        assert env["HF_HUB_CACHE"]["value"] == flags["--download-dir"]
        assert env["HF_TOKEN"]["valueFrom"]["secretKeyRef"] == {"name": "hf-token", "key": "HF_TOKEN"}
        if workload["kind"] == "LeaderWorkerSet":
            # SGLang's documented LWS launch: every pod runs the server with the group's size, its rank
            # and the leader's rendezvous address.
            assert flags["--nnodes"] == "$(LWS_GROUP_SIZE)"
            assert flags["--dist-init-addr"] == "$(LWS_LEADER_ADDRESS):20000"
            assert flags["--node-rank"] == ("0" if role == "leader" else "$(LWS_WORKER_INDEX)")
            # Only the leader serves HTTP, so only it has probes.
            assert ("readinessProbe" in container) == (role == "leader")
        else:
            assert "--nnodes" not in flags
        if role == "leader":
            assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
            assert container["startupProbe"]["httpGet"]["path"] == "/health"


def test_vllm_rdma_and_nccl_settings(rendered):
    if engine_of(rendered) == "nim" or workload_of(rendered["objects"])["kind"] != "LeaderWorkerSet":
        pytest.skip("multi-node vLLM and SGLang only")
    rdma = "inference_common_rdma_enabled=true" in rendered["args"]
    for _role, template in pod_templates(workload_of(rendered["objects"])):
        (container,) = template["spec"]["containers"]
        env = env_of(container)
        assert env["NCCL_SOCKET_IFNAME"]["value"] == "eth0"
        assert env["NCCL_DEBUG"]["value"] == "WARN"
        assert ("NCCL_IB_HCA" in env) == rdma
        assert ("rdma/rdma_shared_device_a" in container["resources"]["limits"]) == rdma
        capabilities = container.get("securityContext", {}).get("capabilities", {}).get("add", [])
        assert ("IPC_LOCK" in capabilities) == rdma


def test_nim_environment_equals_the_plan(rendered):
    if engine_of(rendered) != "nim":
        pytest.skip("not a NIM scenario")
    model, plan = rendered["plan"], rendered["plan"]["plan"]
    workload = workload_of(rendered["objects"])
    for role, template in pod_templates(workload):
        spec = template["spec"]
        assert spec["securityContext"]["fsGroup"] == 1000
        assert spec["imagePullSecrets"] == [{"name": "nvcr-pull"}]
        (container,) = spec["containers"]
        assert container["image"].startswith("nvcr.io/nim/meta/llama-3.1-")
        env = env_of(container)
        assert env["NGC_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "ngc-api", "key": "NGC_API_KEY"}
        assert env["NIM_CACHE_PATH"]["value"] == "/model-store"
        assert env["NIM_PIPELINE_PARALLEL_SIZE"]["value"] == str(plan["pipeline_parallel_size"])
        assert env["NIM_MAX_MODEL_LEN"]["value"] == str(plan["max_model_len"])
        assert env["NIM_SERVED_MODEL_NAME"]["value"] == model["model"]["hf_id"]
        passthrough = flag_values(shlex.split(env["NIM_PASSTHROUGH_ARGS"]["value"]))
        assert passthrough["--tensor-parallel-size"] == str(plan["tensor_parallel_size"])
        assert passthrough["--gpu-memory-utilization"] == str(plan["gpu_memory_utilization"])
        assert passthrough["--max-num-seqs"] == str(plan["max_num_seqs"])
        if workload["kind"] == "LeaderWorkerSet":
            # NIM 2.x forms the group over Ray, as NVIDIA's NIM Operator renders it.
            assert env["NIM_NUM_COMPUTE_NODES"]["value"] == str(plan["nodes"])
            assert env["NIM_JSONL_LOGGING"]["value"] == "0"
            expected = (["nim-serve-ray", "--head", "--port", "6379"] if role == "leader"
                        else ["nim-serve-ray", "--head-address", "$(LWS_LEADER_ADDRESS):6379"])
            assert container["args"] == expected and "command" not in container
            assert {"name": "ray", "containerPort": 6379, "protocol": "TCP"} in container["ports"]
        else:
            assert "args" not in container and "NIM_NUM_COMPUTE_NODES" not in env
        assert not set(env) & {"NIM_MULTI_NODE", "NIM_LEADER_ROLE", "NIM_NODE_RANK"}


def test_rendered_settings_are_in_the_upstream_contracts(rendered):
    """Every vLLM flag and VLLM_*/HF_* variable, NIM variable and command, and metric name exists upstream."""
    objects = rendered["objects"]
    violations = (contracts.vllm_violations(objects) + contracts.nim_violations(objects) + contracts.sglang_violations(objects)
                  + contracts.metric_violations(objects))
    assert not violations, violations


# --- Service, exposure, monitoring, autoscaling ------------------------------------------


def test_service_selects_the_serving_pod(rendered):
    service = only(rendered["objects"], "Service")
    assert service["spec"]["type"] == "ClusterIP"
    assert service["spec"]["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    workload = workload_of(rendered["objects"])
    selector = service["spec"]["selector"]
    leader = pod_templates(workload)[0][1]
    assert leader["spec"]["containers"][0]["ports"][0]["name"] == "http"
    if workload["kind"] == "LeaderWorkerSet":
        assert selector.pop("leaderworkerset.sigs.k8s.io/worker-index") == "0"
    assert selector.items() <= leader["metadata"]["labels"].items()


def test_metrics_scraping(rendered):
    path = "/v1/metrics" if engine_of(rendered) == "nim" else "/metrics"
    monitors = by_kind(rendered["objects"], "ServiceMonitor")
    service = only(rendered["objects"], "Service")
    if "inference_service_monitoring=annotations" in rendered["args"]:
        assert not monitors
        assert service["metadata"]["annotations"]["prometheus.io/path"] == path
    else:
        (monitor,) = monitors
        assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
        assert monitor["spec"]["endpoints"][0]["path"] == path


def test_autoscaler_targets_the_workload(rendered):
    workload = workload_of(rendered["objects"])
    target = {"apiVersion": workload["apiVersion"], "kind": workload["kind"], "name": workload["metadata"]["name"]}
    hpas = by_kind(rendered["objects"], "HorizontalPodAutoscaler")
    scaled = by_kind(rendered["objects"], "ScaledObject")
    engine = engine_of(rendered)
    # NIM 2.x runs vLLM inside: the same series name (settable, see the inference_service README).
    series = "sglang:num_queue_reqs" if engine == "sglang" else "vllm:num_requests_waiting"
    if "inference_service_autoscaling=hpa" in rendered["args"]:
        (hpa,) = hpas
        assert hpa["spec"]["scaleTargetRef"] == target
        (metric,) = hpa["spec"]["metrics"]
        assert metric["pods"]["metric"]["name"] == "%s_num_requests_waiting" % engine
        assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "5"}
        assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600
        (adapter,) = [obj for obj in by_kind(rendered["objects"], "ConfigMap")
                      if obj["metadata"]["name"].endswith("-prometheus-adapter-rules")]
        rules = yaml.safe_load(adapter["data"]["config.yaml"])["rules"]
        assert rules[0]["name"]["as"] == "%s_num_requests_waiting" % engine
        assert rules[0]["seriesQuery"].startswith(series + "{")
    else:
        assert not hpas
    if "inference_service_autoscaling=keda" in rendered["args"]:
        (scaled_object,) = scaled
        assert scaled_object["spec"]["scaleTargetRef"] == target
        (trigger,) = scaled_object["spec"]["triggers"]
        assert trigger["type"] == "prometheus"
        assert trigger["metadata"]["query"].startswith("sum(%s{" % series)
        assert trigger["metadata"]["threshold"] == "5"
    else:
        assert not scaled


def test_exposure(rendered):
    ingresses = by_kind(rendered["objects"], "Ingress")
    routes = by_kind(rendered["objects"], "HTTPRoute")
    if "inference_service_expose=ingress" in rendered["args"]:
        (ingress,) = ingresses
        assert ingress["spec"]["tls"] == [{"hosts": ["llm.example.com"], "secretName": "llm-tls"}]
        backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        assert backend == {"name": "llm", "port": {"name": "http"}}
    else:
        assert not ingresses
    if "inference_service_expose=httproute" in rendered["args"]:
        (route,) = routes
        assert route["spec"]["parentRefs"] == [{"name": "inference-gw"}]
        assert route["spec"]["rules"][0]["backendRefs"] == [{"name": "llm", "port": 8000}]
    else:
        assert not routes


# --- Bad input ------------------------------------------------------------------------------


def write_plan(tmp_path, base, **changes):
    plan = load_plan(base)
    for dotted, value in changes.items():
        target = plan
        *parents, leaf = dotted.split("__")
        for key in parents:
            target = target[key]
        target[leaf] = value
    path = tmp_path / "plan.yml"
    path.write_text(yaml.safe_dump({"gpuinfer_plan": plan}))
    return path


BAD_INPUTS = {
    "plan-does-not-fit": (dict(fits=False, advice=["use 8 x H100-80GB"]), SECRETS,
                          "gpuinfer_plan.fits is false"),
    # The plan's layout is gpu_sizing's: a parallel size edited afterwards no longer matches it.
    "layout-disagrees-with-tp": (dict(plan__tensor_parallel_size=16, plan__gpus_per_replica=16), SECRETS,
                                 "plan.layout holds 8 GPUs per replica but tensor_parallel_size x pipeline_parallel_size = 16"),
    "missing-hf-secret": ({}, ["-e", "gpuinfer_engine=vllm"], "vllm_hf_token_secret is empty"),
    "missing-ngc-secret": ({}, ["-e", "gpuinfer_engine=nim", "-e", "model_cache_pull_secret=nvcr-pull"],
                           "NIM needs two Secrets by name"),
    "unknown-engine": ({}, SECRETS + ["-e", "gpuinfer_engine=tgi"], "gpuinfer_engine=tgi: allowed nim, sglang, vllm"),
    "unknown-launch-mode": ({}, SECRETS + ["-e", "vllm_launch_mode=slurm"], "vllm_launch_mode"),
    # The vllm/vllm-openai image has no Ray: the mode is gone.
    "ray-launch-mode": ({}, SECRETS + ["-e", "vllm_launch_mode=ray"], "vllm_launch_mode=ray: must be one of: mp"),
    # A plan made from a config.json path names no repository to download or serve.
    "config-path-without-hub-id": (dict(model__hf_id=None, model__id="/models/custom/config.json"), SECRETS,
                                   "needs plan_hub_id"),
    "extra-arg-overrides-plan": ({}, SECRETS + ["-e", '{"vllm_extra_args": ["--tensor-parallel-size=4"]}'],
                                 "vllm_extra_args must not contain --tensor-parallel-size"),
    "hpa-bad-replicas": ({}, SECRETS + ["-e", "inference_service_autoscaling=hpa", "-e", "inference_service_min_replicas=3"],
                         "inference_service_max_replicas"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_bad_input_fails_before_anything_is_rendered(case, tmp_path):
    changes, extra, message = BAD_INPUTS[case]
    plan_file = write_plan(tmp_path, PLAN_70B, **changes) if changes else PLAN_70B
    render_dir = tmp_path / "render"
    result = run_playbook(render_dir, plan_file, extra)
    output = result.stdout + result.stderr
    assert result.returncode != 0, output[-3000:]
    assert message in " ".join(output.split()), output[-3000:]
    assert not render_dir.exists() or not any(render_dir.iterdir())
