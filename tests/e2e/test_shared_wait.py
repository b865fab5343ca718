"""gpuinfer.serving.k8s_wait run by ansible-playbook against the simulated cluster (tests/cluster).

Real objects on the real API server: a Deployment whose pod kwok reports Ready, a Job kwok completes,
a Deployment that cannot be scheduled (timeout). The outages are real too: a kubeconfig pointing at a
port nothing listens on, and a TCP forwarder in front of the API server that drops every connection
for a few seconds and then passes them through.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading
import time
import uuid
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.e2e

REPO_ROOT = Path(__file__).resolve().parents[2]
ANSIBLE_PLAYBOOK = Path(os.environ.get("GPUINFER_ANSIBLE_PLAYBOOK", REPO_ROOT / ".venv" / "bin" / "ansible-playbook"))

WAIT_PLAYBOOK = """
- name: Wait with gpuinfer.serving.k8s_wait
  hosts: localhost
  connection: local
  gather_facts: false
  vars:
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  module_defaults:
    # The kubeconfig reaches k8s_wait through the collection's action group.
    group/gpuinfer.serving.k8s:
      kubeconfig: "{{ kubeconfig }}"
  tasks:
    - name: Wait
      gpuinfer.serving.k8s_wait:
        api_version: "{{ wait.api_version }}"
        kind: "{{ wait.kind }}"
        name: "{{ wait.name }}"
        namespace: "{{ wait.namespace | default(omit) }}"
        condition: "{{ wait.condition | default(omit) }}"
        timeout: "{{ wait.timeout | default(omit) }}"
        delay: "{{ wait.delay | default(omit) }}"
        api_outage_timeout: "{{ wait.api_outage_timeout | default(omit) }}"
      register: waited
      ignore_errors: true
    - name: Save the result
      ansible.builtin.copy:
        content: "{{ waited | ansible.builtin.to_json }}"
        dest: "{{ out }}"
        mode: "0600"
      check_mode: false
"""


def run_wait(sim, tmp_path, kubeconfig=None, check=False, **wait):
    playbook = tmp_path / "wait.yml"
    playbook.write_text(WAIT_PLAYBOOK)
    out = tmp_path / ("wait-%s.json" % uuid.uuid4().hex[:6])
    variables = {"kubeconfig": str(kubeconfig or sim.kubeconfig), "out": str(out), "wait": wait}
    args = [str(ANSIBLE_PLAYBOOK), str(playbook), "-e", json.dumps(variables)]
    if check:
        args.append("--check")
    env = dict(sim.env, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    started = time.monotonic()
    proc = subprocess.run(args, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    wall = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return json.loads(out.read_text()), proc, wall


def sim_server(sim):
    config = yaml.safe_load(Path(sim.kubeconfig).read_text(encoding="utf-8"))
    return config["clusters"][0]["cluster"]["server"]


def kubeconfig_for(sim, tmp_path, server):
    """A copy of the sim kubeconfig whose clusters all point at ``server``."""
    config = yaml.safe_load(Path(sim.kubeconfig).read_text(encoding="utf-8"))
    for cluster in config["clusters"]:
        cluster["cluster"]["server"] = server
    path = tmp_path / ("kubeconfig-%s" % uuid.uuid4().hex[:6])
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def deployment(name, node_selector=None):
    spec = {
        "automountServiceAccountToken": False,
        "terminationGracePeriodSeconds": 0,
        "containers": [{"name": "app", "image": "registry.invalid/none:0",
                        "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}],
    }
    if node_selector:
        spec["nodeSelector"] = node_selector
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec},
        },
    }


def job(name):
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "backoffLimit": 0,
            "template": {"spec": {
                "restartPolicy": "Never",
                "automountServiceAccountToken": False,
                "containers": [{"name": "download", "image": "registry.invalid/none:0",
                                "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}],
            }},
        },
    }


def apply(sim, namespace, manifest):
    sim.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))


@pytest.fixture(name="namespace")
def namespace_fixture(sim_cluster):
    name = "e2e-wait-%s" % uuid.uuid4().hex[:6]
    sim_cluster.kubectl("create", "namespace", name)
    yield name
    sim_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


class FlakyForwarder(object):
    """TCP forwarder to the API server that drops every connection during ``down_for`` seconds after the first one."""

    def __init__(self, upstream, down_for):
        self.upstream = upstream
        self.down_for = down_for
        self.up_at = None
        self.dropped = 0
        self.forwarded = 0
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = self.listener.getsockname()[1]
        self.sockets = []
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopped:
            try:
                conn, _addr = self.listener.accept()
            except OSError:
                return
            now = time.monotonic()
            if self.up_at is None:
                self.up_at = now + self.down_for
            if now < self.up_at:
                self.dropped += 1
                conn.close()
                continue
            self.forwarded += 1
            upstream = socket.create_connection(self.upstream)
            self.sockets += [conn, upstream]
            for source, sink in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        self.stopped = True
        self.listener.close()
        for sock in self.sockets:
            sock.close()


def test_waits_for_a_deployment_to_be_ready(sim_cluster, tmp_path, namespace):
    apply(sim_cluster, namespace, deployment("engine"))
    result, _proc, _wall = run_wait(sim_cluster, tmp_path, api_version="apps/v1", kind="Deployment", name="engine",
                                    namespace=namespace, condition="ready", timeout=120, delay=1)
    assert not result.get("failed"), result
    assert result["ready"] is True and result["waited"] is True and result["changed"] is False
    assert result["outages"] == 0 and result["longest_outage"] == 0
    assert result["api_server"] == sim_server(sim_cluster)
    status = result["resource"]["status"]
    assert status["readyReplicas"] == status["updatedReplicas"] == status["availableReplicas"] == 1
    # What kubectl sees agrees.
    live = json.loads(sim_cluster.kubectl("get", "deployment", "engine", "-n", namespace, "-o", "json").stdout)
    assert live["status"]["readyReplicas"] == 1

    # Check mode does not wait.
    checked, _proc, _wall = run_wait(sim_cluster, tmp_path, check=True, api_version="apps/v1", kind="Deployment",
                                     name="engine", namespace=namespace)
    assert checked["waited"] is False and checked["polls"] == 0 and not checked.get("failed")
    assert "check mode" in checked["msg"]

    # absent, after a delete that does not wait.
    sim_cluster.kubectl("delete", "deployment", "engine", "-n", namespace, "--wait=false")
    gone, _proc, _wall = run_wait(sim_cluster, tmp_path, api_version="apps/v1", kind="deployments", name="engine",
                                  namespace=namespace, condition="absent", timeout=60, delay=1)
    assert gone["ready"] is True and gone["resource"] is None, gone


def test_waits_for_a_job_to_complete(sim_cluster, tmp_path, namespace):
    apply(sim_cluster, namespace, job("download"))
    result, _proc, _wall = run_wait(sim_cluster, tmp_path, api_version="batch/v1", kind="Job", name="download",
                                    namespace=namespace, condition="complete", timeout=120, delay=1)
    assert not result.get("failed"), result
    assert result["ready"] is True and result["job_failed"] is False
    assert result["resource"]["status"]["succeeded"] == 1


def test_timeout_reports_the_status(sim_cluster, tmp_path, namespace):
    apply(sim_cluster, namespace, deployment("stuck", node_selector={"sim.gpuinfer.io/no-such-node": "true"}))
    result, _proc, _wall = run_wait(sim_cluster, tmp_path, api_version="apps/v1", kind="Deployment", name="stuck",
                                    namespace=namespace, timeout=4, delay=1)
    assert result["failed"] is True and result["failure"] == "timeout"
    assert result["msg"] == "Deployment %s/stuck not ready after 4 s: ready 0/1, updated 1/1, available 0/1" % namespace, result


def test_kind_not_served_fails_at_once(sim_cluster, tmp_path, namespace):
    result, _proc, _wall = run_wait(sim_cluster, tmp_path, api_version="example.invalid/v1", kind="Widget", name="w",
                                    namespace=namespace, timeout=60, delay=1)
    assert result["failed"] is True and result["failure"] == "api_error" and result["polls"] == 1
    assert "does not serve example.invalid/v1 Widget" in result["msg"], result


def test_unreachable_api_server_fails_after_the_outage_limit(sim_cluster, tmp_path):
    server = "https://127.0.0.1:1"
    result, proc, wall = run_wait(sim_cluster, tmp_path, kubeconfig=kubeconfig_for(sim_cluster, tmp_path, server),
                                  api_version="apps/v1", kind="Deployment", name="llama-vllm", namespace="llm-serving",
                                  timeout=600, delay=5, api_outage_timeout=3)
    print("measured: elapsed %.1f s in the module, %.1f s for ansible-playbook; msg: %s" % (result["elapsed"], wall, result["msg"]))
    assert result["failed"] is True and result["failure"] == "api_outage"
    assert result["msg"].startswith(
        "The API server https://127.0.0.1:1 has not answered for 4 s (limit gpuinfer_api_outage_timeout=3) "
        "while waiting for Deployment llm-serving/llama-vllm to be ready: "
    ), result["msg"]
    assert "Connection refused" in result["msg"]
    assert result["api_server"] == server and result["outages"] == 1 and result["ready"] is False
    assert 3 < result["elapsed"] < 6, result
    assert result["msg"] in proc.stdout  # the task output shows the message


def test_short_outage_is_ridden_out(sim_cluster, tmp_path, namespace):
    apply(sim_cluster, namespace, deployment("engine"))
    host, port = sim_server(sim_cluster).split("://", 1)[1].rsplit(":", 1)
    forwarder = FlakyForwarder((host, int(port)), down_for=4)
    try:
        kubeconfig = kubeconfig_for(sim_cluster, tmp_path, "https://127.0.0.1:%d" % forwarder.port)
        result, _proc, _wall = run_wait(sim_cluster, tmp_path, kubeconfig=kubeconfig, api_version="apps/v1",
                                        kind="Deployment", name="engine", namespace=namespace,
                                        timeout=120, delay=1, api_outage_timeout=15)
    finally:
        forwarder.close()
    print("measured: %s outage(s), longest %.1f s, %d polls; %d connections dropped, %d forwarded"
          % (result.get("outages"), result.get("longest_outage", 0), result.get("polls", 0), forwarder.dropped, forwarder.forwarded))
    assert not result.get("failed"), result
    assert result["ready"] is True
    assert result["outages"] == 1 and 2 <= result["longest_outage"] <= 8, result
    assert forwarder.dropped >= 2 and forwarder.forwarded >= 1
