"""site.yml in render mode on scenario inventories: what a GitOps user commits.

Checks what only the whole playbook shows: the download Job and the engine agree on the model cache
(one layout, the same revision, offline start), NIM multi-node forms its Ray group as NVIDIA
documents it, and every rendered engine flag, variable, metric and GPU Operator values key exists
in the pinned upstream release (tests/contracts).
"""

import os
import pathlib
import subprocess
import sys

import pytest
import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from tests.contracts import check as contracts  # noqa: E402

SCENARIOS = {
    "llama70b-tp8": ["-e", "gpuinfer_install_gpu_operator=true"],
    "nim-llama405b-multinode": [],
}


@pytest.fixture(scope="module", params=sorted(SCENARIOS))
def site(request, tmp_path_factory):
    render_dir = tmp_path_factory.mktemp(request.param)
    command = [str(ROOT / ".venv" / "bin" / "ansible-playbook"), "-i", "inventories/%s" % request.param,
               "playbooks/site.yml", "-e", "gpuinfer_render_dir=%s" % render_dir] + SCENARIOS[request.param]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False,
                            env=dict(os.environ, ANSIBLE_NOCOLOR="1"))
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    objects = []
    for path in sorted(render_dir.glob("*.yaml")):
        if path.name != "gpu-operator-values.yaml":
            objects.extend(doc for doc in yaml.safe_load_all(path.read_text()) if doc and "kind" in doc)
    return {"name": request.param, "dir": render_dir, "objects": objects,
            "plan": yaml.safe_load((render_dir / "plan.yml").read_text())}


def kind(objects, name):
    return [obj for obj in objects if obj["kind"] == name]


def env_of(container):
    return dict((item["name"], item.get("value")) for item in container.get("env", []))


def test_everything_rendered_is_in_the_upstream_contracts(site):
    objects = site["objects"]
    violations = (contracts.vllm_violations(objects) + contracts.nim_violations(objects) + contracts.sglang_violations(objects)
                  + contracts.metric_violations(objects))
    values = site["dir"] / "gpu-operator-values.yaml"
    if values.exists():
        violations += contracts.gpu_operator_violations(yaml.safe_load(values.read_text()))
    assert not violations, violations


def test_download_job_and_engine_share_one_cache_and_revision(site):
    if site["name"].startswith("nim"):
        pytest.skip("vLLM scenario")
    (job,) = kind(site["objects"], "Job")
    (download,) = job["spec"]["template"]["spec"]["containers"]
    (deployment,) = kind(site["objects"], "Deployment")
    (engine,) = deployment["spec"]["template"]["spec"]["containers"]
    args = dict(arg.split("=", 1) for arg in engine["args"] if arg.startswith("--") and "=" in arg)
    cache_dir = download["args"][download["args"].index("--cache-dir") + 1]
    revision = download["args"][download["args"].index("--revision") + 1]
    # hf download writes models--<org>--<name>/ under HF_HUB_CACHE; vLLM reads config.json there.
    assert cache_dir == env_of(download)["HF_HUB_CACHE"] == env_of(engine)["HF_HUB_CACHE"] == args["--download-dir"]
    assert download["args"][0] == engine["args"][0] == site["plan"]["model"]["hf_id"]
    assert revision == args["--revision"] == site["plan"]["model"]["revision"]
    # The Job fills the cache before the engine exists: the engine never needs the Hub.
    assert env_of(engine)["HF_HUB_OFFLINE"] == "1" and "HF_HUB_OFFLINE" not in env_of(download)
    mounts = [m["mountPath"] for m in engine["volumeMounts"]] + [m["mountPath"] for m in download["volumeMounts"]]
    assert mounts.count(cache_dir) == 2


def test_nim_multi_node_forms_a_ray_group_as_nvidia_documents(site):
    if not site["name"].startswith("nim"):
        pytest.skip("NIM scenario")
    documented = contracts.load("nim")["multi_node"]
    (lws,) = kind(site["objects"], "LeaderWorkerSet")
    template = lws["spec"]["leaderWorkerTemplate"]
    assert template["size"] == site["plan"]["plan"]["nodes"] == 2
    (leader,) = template["leaderTemplate"]["spec"]["containers"]
    (worker,) = template["workerTemplate"]["spec"]["containers"]
    assert leader["args"] == documented["leader"]["args"]
    assert worker["args"] == documented["worker"]["args"]
    assert "command" not in leader and "command" not in worker
    (service,) = kind(site["objects"], "Service")
    assert service["spec"]["selector"]["leaderworkerset.sigs.k8s.io/worker-index"] == "0"
