# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""gpu_cluster_info through the real kubernetes client with a fake HTTP layer serving recorded responses.

The fake replaces the client's REST layer (the object that would call urllib3), so the generated API
classes, query serialisation, pagination and error handling all run as they do against a cluster.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import socket

import pytest

kubernetes = pytest.importorskip("kubernetes")

from kubernetes import client as k8s_client  # noqa: E402
from kubernetes.client import rest  # noqa: E402

from ansible.module_utils.testing import patch_module_args  # noqa: E402
from ansible_collections.gpuinfer.serving.plugins.module_utils.cluster import cluster_inventory as inv  # noqa: E402
from ansible_collections.gpuinfer.serving.plugins.modules import gpu_cluster_info as module  # noqa: E402
from ansible_collections.gpuinfer.serving.tests.unit.repo_fixtures import fixture_dir, load_json

try:
    from urllib.parse import parse_qs, urlsplit
except ImportError:  # pragma: no cover
    from urlparse import parse_qs, urlsplit


FIXTURES = fixture_dir("k8s_api", "discovery-aggregated-full.json")
pytestmark = pytest.mark.skipif(FIXTURES is None, reason="tests/fixtures/k8s_api is only in the repository checkout")


def load(name):
    return load_json(FIXTURES, name)


class FakeHTTPResponse(object):
    """The urllib3 response surface the client touches."""

    def __init__(self, status, document):
        self.status = status
        self.reason = {200: "OK", 401: "Unauthorized", 403: "Forbidden", 410: "Gone"}.get(status, "Error")
        self.data = json.dumps(document).encode("utf-8")
        self.headers = {"Content-Type": "application/json"}

    def getheaders(self):
        return self.headers

    def getheader(self, name, default=None):
        return self.headers.get(name, default)


def status(code, reason, message):
    return code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message,
                  "reason": reason, "code": code}


class FakeAPIServer(object):
    """Answers GET requests from recorded pages; ``overrides`` maps (path, continue token) to (status, body)."""

    def __init__(self, discovery="discovery-aggregated-full.json", overrides=None):
        self.requests = []
        self.discovery = discovery
        self.overrides = dict(overrides or {})
        pod_pages = [load("pods-selected-limit4-page%d.json" % n) for n in (1, 2, 3)]
        node_pages = [load("nodes-limit4-page%d.json" % n) for n in (1, 2, 3)]
        self.pages = {"/api/v1/pods": self._chain(pod_pages), "/api/v1/nodes": self._chain(node_pages)}
        self.documents = {
            "/apis/nvidia.com/v1/clusterpolicies": load("clusterpolicies-ready.json"),
            "/apis/apiregistration.k8s.io/v1/apiservices/v1beta2.custom.metrics.k8s.io": load("apiservice-v1beta2.custom.metrics.k8s.io.json"),
            "/apis/nvidia.com/v1": load("apiresources-nvidia.com-v1.json"),
            "/apis/leaderworkerset.x-k8s.io/v1": load("apiresources-leaderworkerset.x-k8s.io-v1.json"),
            "/apis/monitoring.coreos.com/v1": load("apiresources-monitoring.coreos.com-v1.json"),
        }

    @staticmethod
    def _chain(pages):
        by_token = {None: pages[0]}
        for previous, page in zip(pages, pages[1:]):
            by_token[previous["metadata"]["continue"]] = page
        return by_token

    def request(self, method, url, headers=None, body=None, post_params=None, _request_timeout=None):
        parts = urlsplit(url)
        path = parts.path.rstrip("/")  # the client asks for /apis/
        query = dict((k, v[0]) for k, v in parse_qs(parts.query).items())
        self.requests.append({"method": method, "path": path, "query": query, "headers": dict(headers or {})})
        token = query.get("continue")
        if (path, token) in self.overrides:
            code, document = self.overrides.pop((path, token))
        elif path in self.pages:
            code, document = 200, self.pages[path][token]
        elif path == "/apis":
            # Like kube-apiserver: aggregated discovery is served on /apis, never on /apis/.
            accepts_aggregated = parts.path == "/apis" and "as=APIGroupDiscoveryList" in (headers or {}).get("Accept", "")
            code, document = 200, load(self.discovery if accepts_aggregated else "discovery-legacy.json")
        elif path in self.documents:
            code, document = 200, self.documents[path]
        else:
            code, document = status(404, "NotFound", "the server could not find the requested resource")
        return rest.RESTResponse(FakeHTTPResponse(code, document))

    def close(self):
        pass

    def paths(self):
        return [r["path"] for r in self.requests]


def fake_client(server):
    api = k8s_client.ApiClient(k8s_client.Configuration(host="https://k8s.test:6443"))
    api.rest_client = server
    return api


def test_pagination_counts_every_request_and_keeps_the_inventory_exact():
    server = FakeAPIServer()
    reader = module.ClusterReader(fake_client(server), page_size=4)
    result = reader.gather()

    # 3 pod pages + 3 node pages + 1 aggregated discovery + 1 ClusterPolicy list + 1 APIService read.
    assert reader.api_calls == len(server.requests) == 9
    assert server.paths() == ["/api/v1/pods"] * 3 + ["/api/v1/nodes"] * 3 + [
        "/apis", "/apis/nvidia.com/v1/clusterpolicies", "/apis/apiregistration.k8s.io/v1/apiservices/v1beta2.custom.metrics.k8s.io"]
    pod_requests = [r for r in server.requests if r["path"] == "/api/v1/pods"]
    assert all(r["query"]["limit"] == "4" for r in pod_requests)
    assert all(r["query"]["fieldSelector"] == inv.POD_FIELD_SELECTOR for r in pod_requests)
    assert [r["query"].get("continue") for r in pod_requests] == [
        None, load("pods-selected-limit4-page1.json")["metadata"]["continue"], load("pods-selected-limit4-page2.json")["metadata"]["continue"]]
    node_requests = [r for r in server.requests if r["path"] == "/api/v1/nodes"]
    assert [r["query"].get("continue") for r in node_requests] == [
        None, load("nodes-limit4-page1.json")["metadata"]["continue"], load("nodes-limit4-page2.json")["metadata"]["continue"]]
    assert "labelSelector" not in node_requests[0]["query"]
    assert "as=APIGroupDiscoveryList" in server.requests[6]["headers"]["Accept"]

    nodes = dict((n["name"], n) for n in result["nodes"])
    assert len(nodes) == 11
    assert nodes["dgx-h100-0"]["gpu"]["requested"] == 2 and nodes["hgx-a100-2"]["gpu"]["free"] == 1
    assert result["summary"]["NVIDIA-H100-80GB-HBM3"]["free_gpus"] == 6
    assert result["totals"] == {"nodes": 11, "gpu_nodes": 10, "gpus": 84, "requested_gpus": 28, "free_gpus": 48, "pods": 10}
    assert result["components"]["gpu_operator"]["ready"] and result["components"]["prometheus_adapter"]["available"]
    assert result["discovery"] == "aggregated"


def test_one_page_when_the_page_is_big_enough():
    server = FakeAPIServer()
    # The fake serves 4-item pages whatever the limit; what matters is that the limit is sent as given.
    reader = module.ClusterReader(fake_client(server), page_size=500)
    reader.gather(node_selector="nvidia.com/gpu.present=true")
    node_requests = [r for r in server.requests if r["path"] == "/api/v1/nodes"]
    assert node_requests[0]["query"]["limit"] == "500"
    assert node_requests[0]["query"]["labelSelector"] == "nvidia.com/gpu.present=true"


def test_legacy_discovery_reads_only_the_interesting_groups():
    server = FakeAPIServer()
    original = server.request

    def ignore_aggregated_accept(method, url, headers=None, **kwargs):
        headers = dict(headers or {})
        headers["Accept"] = "application/json"
        return original(method, url, headers=headers, **kwargs)

    server_client = fake_client(server)
    server_client.rest_client = type("Legacy", (), {"request": staticmethod(ignore_aggregated_accept), "close": lambda self: None})()
    reader = module.ClusterReader(server_client, page_size=4)
    result = reader.gather()
    assert result["discovery"] == "legacy"
    # nvidia.com, leaderworkerset.x-k8s.io and monitoring.coreos.com are served; keda.sh and apps.nvidia.com are not.
    assert server.paths()[7:10] == ["/apis/nvidia.com/v1", "/apis/leaderworkerset.x-k8s.io/v1", "/apis/monitoring.coreos.com/v1"]
    assert reader.api_calls == 11
    assert result["components"]["gpu_operator"]["ready"] and result["components"]["leaderworkerset"]["installed"]
    assert not result["components"]["keda"]["installed"]


def test_expired_continue_token_restarts_the_list_without_double_counting():
    token = load("pods-selected-limit4-page1.json")["metadata"]["continue"]
    server = FakeAPIServer(overrides={("/api/v1/pods", token): status(410, "Expired", "The provided continue parameter is too old")})
    reader = module.ClusterReader(fake_client(server), page_size=4)
    result = reader.gather()
    assert server.paths()[:5] == ["/api/v1/pods"] * 5  # page 1, 410, then pages 1-3 again
    assert reader.api_calls == 11
    assert result["totals"]["pods"] == 10 and result["totals"]["requested_gpus"] == 28


def test_forbidden_cluster_policy_is_a_warning_not_a_failure():
    server = FakeAPIServer(overrides={("/apis/nvidia.com/v1/clusterpolicies", None): status(
        403, "Forbidden", 'clusterpolicies.nvidia.com is forbidden: User "viewer" cannot list resource "clusterpolicies"')})
    reader = module.ClusterReader(fake_client(server), page_size=4)
    result = reader.gather()
    assert result["components"]["gpu_operator"]["state"] == "unknown"
    assert any("clusterpolicies.nvidia.com" in w for w in reader.warnings)


def run(args, capsys, monkeypatch=None, server=None):
    if server is not None:
        monkeypatch.setattr(module, "api_client", lambda params: fake_client(server))
    with patch_module_args(args):
        with pytest.raises(SystemExit):
            module.main()
    return json.loads(capsys.readouterr().out)


def test_module_result(capsys, monkeypatch):
    server = FakeAPIServer()
    result = run({"page_size": 4, "_ansible_check_mode": True}, capsys, monkeypatch, server)
    assert result["changed"] is False and "failed" not in result
    assert result["api_calls"] == 9 and len(result["nodes"]) == 11
    assert result["summary"]["NVIDIA-A100-SXM4-80GB"]["nodes_with_free"] == {"1": 3, "2": 2, "4": 2, "8": 0}


def test_rejected_credentials_fail_with_a_message(capsys, monkeypatch):
    server = FakeAPIServer(overrides={("/api/v1/pods", None): status(401, "Unauthorized", "Unauthorized")})
    result = run({}, capsys, monkeypatch, server)
    assert result["failed"] and "rejected the credentials (401 Unauthorized)" in result["msg"]
    assert result["api_calls"] == 1 and "Traceback" not in json.dumps(result)


def test_forbidden_node_list_names_the_rbac_needed(capsys, monkeypatch):
    server = FakeAPIServer(overrides={("/api/v1/nodes", None): status(
        403, "Forbidden", 'nodes is forbidden: User "system:serviceaccount:ci:deployer" cannot list resource "nodes"')})
    result = run({"page_size": 4}, capsys, monkeypatch, server)
    assert result["failed"] and "cannot list resource \"nodes\"" in result["msg"] and "ClusterRole" in result["msg"]


def test_unreachable_api_server(capsys, tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # closed again when the block ends: nothing listens there
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "down",
        "clusters": [{"name": "down", "cluster": {"server": "https://127.0.0.1:%d" % port, "insecure-skip-tls-verify": True}}],
        "users": [{"name": "u", "user": {"token": "not-a-secret"}}],
        "contexts": [{"name": "down", "context": {"cluster": "down", "user": "u"}}],
    }))
    result = run({"kubeconfig": str(kubeconfig), "request_timeout": 5}, capsys)
    assert result["failed"] and result["msg"].startswith("cannot reach the Kubernetes API server at https://127.0.0.1:%d" % port)


def test_missing_kubeconfig(capsys, tmp_path):
    result = run({"kubeconfig": str(tmp_path / "nope")}, capsys)
    assert result["failed"] and "does not exist" in result["msg"] and result["api_calls"] == 0


def test_bad_page_size(capsys):
    result = run({"page_size": 0}, capsys)
    assert result["failed"] and "page_size must be a positive number" in result["msg"]


def test_legacy_discovery_survives_an_unavailable_group():
    server = FakeAPIServer(overrides={("/apis/nvidia.com/v1", None): status(503, "ServiceUnavailable", "service unavailable")})
    original = server.request

    def legacy_only(method, url, headers=None, **kwargs):
        return original(method, url, headers={"Accept": "application/json"}, **kwargs)

    api = fake_client(server)
    api.rest_client = type("Legacy", (), {"request": staticmethod(legacy_only), "close": lambda self: None})()
    reader = module.ClusterReader(api, page_size=4)
    result = reader.gather()
    assert any("nvidia.com/v1 (503" in w for w in reader.warnings)
    # The resource list was unavailable, so the ClusterPolicy list is tried anyway and answers.
    assert "/apis/nvidia.com/v1/clusterpolicies" in server.paths()
    assert result["components"]["gpu_operator"]["state"] == "ready"
