# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""k8s_labelled_info's reader and module through the real kubernetes client with a fake REST layer: metadata-only
lists page by page, an expired continue token, a resource that cannot be listed, and the failure messages."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json

import pytest

kubernetes = pytest.importorskip("kubernetes")

from kubernetes.client import rest  # noqa: E402

from ansible.module_utils.testing import patch_module_args  # noqa: E402
from ansible_collections.gpuinfer.serving.plugins.module_utils.kube import k8s_labelled as kl  # noqa: E402
from ansible_collections.gpuinfer.serving.plugins.modules import k8s_labelled_info as module  # noqa: E402
# The fake HTTP layer gpu_cluster_info's tests use.
from ansible_collections.gpuinfer.serving.tests.unit.plugins.modules.test_gpu_cluster_info import (  # noqa: E402
    FakeHTTPResponse,
    fake_client,
    status,
)

try:
    from urllib.parse import parse_qs, urlsplit
except ImportError:  # pragma: no cover
    from urlparse import parse_qs, urlsplit


def pod(name, owned=False):
    metadata = {"name": name, "namespace": "llm"}
    if owned:
        metadata["ownerReferences"] = [{"kind": "ReplicaSet", "name": "rs", "controller": True}]
    return {"metadata": metadata}


def page(items, token=None):
    return 200, {"kind": "PartialObjectMetadataList", "items": items, "metadata": {"continue": token} if token else {}}


class FakeAPIServer(object):
    """Answers ``(path, continue token)`` from ``answers`` (each a list, used in order); 404 otherwise."""

    def __init__(self, answers):
        self.requests = []
        self.answers = dict((key, list(value)) for key, value in answers.items())

    def request(self, method, url, headers=None, body=None, post_params=None, _request_timeout=None):
        parts = urlsplit(url)
        query = dict((k, v[0]) for k, v in parse_qs(parts.query).items())
        self.requests.append({"path": parts.path, "query": query, "headers": dict(headers or {})})
        queue = self.answers.get((parts.path, query.get("continue")))
        code, document = queue.pop(0) if queue else status(404, "NotFound", "the server could not find the requested resource")
        return rest.RESTResponse(FakeHTTPResponse(code, document))

    def close(self):
        pass


PODS = kl._resource("", "v1", "pods", "Pod", True, ["list", "delete"])
PODS_PATH = "/api/v1/namespaces/llm/pods"


def test_list_objects_reads_every_page_of_metadata_and_counts_requests():
    server = FakeAPIServer({(PODS_PATH, None): [page([pod("a"), pod("b", owned=True)], "t1")], (PODS_PATH, "t1"): [page([pod("c")])]})
    reader = module.LabelledReader(fake_client(server), page_size=2)
    objects, owned = reader.list_objects(PODS, "llm", "app=x", include_owned=False)
    assert [o["name"] for o in objects] == ["a", "c"] and owned == 1
    assert reader.api_calls == len(server.requests) == 2
    assert all(r["query"]["labelSelector"] == "app=x" and r["query"]["limit"] == "2" for r in server.requests)
    assert all(r["headers"]["Accept"] == kl.METADATA_LIST_ACCEPT for r in server.requests)


def test_list_objects_starts_over_when_the_continue_token_expired():
    server = FakeAPIServer({
        (PODS_PATH, None): [page([pod("a")], "t1"), page([pod("a")], "u1")],
        (PODS_PATH, "t1"): [status(410, "Expired", "The provided continue parameter is too old")],
        (PODS_PATH, "u1"): [page([pod("b")])],
    })
    reader = module.LabelledReader(fake_client(server), page_size=1)
    objects, owned = reader.list_objects(PODS, "llm", "app=x", include_owned=False)
    assert [o["name"] for o in objects] == ["a", "b"] and owned == 0
    assert reader.api_calls == 4 and reader.skipped == []


def test_a_resource_that_cannot_be_listed_is_skipped_even_after_a_first_page():
    server = FakeAPIServer({
        (PODS_PATH, None): [page([pod("a")], "t1")],
        (PODS_PATH, "t1"): [status(403, "Forbidden", 'pods is forbidden: User "u" cannot list resource "pods"')],
    })
    reader = module.LabelledReader(fake_client(server), page_size=1)
    assert reader.list_objects(PODS, "llm", "app=x", include_owned=False) == ([], 0)
    assert reader.skipped == [{"api_version": "v1", "resource": "pods", "namespace": "llm", "reason": "403 Forbidden"}]


def test_a_server_error_in_a_list_fails():
    server = FakeAPIServer({(PODS_PATH, None): [status(500, "InternalError", "etcd is sad")]})
    reader = module.LabelledReader(fake_client(server), page_size=1)
    with pytest.raises(module.ApiException):
        reader.list_objects(PODS, "llm", "app=x", include_owned=False)


def run(args, capsys, monkeypatch, server):
    monkeypatch.setattr(module, "api_client", lambda params: fake_client(server))
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


def test_forbidden_discovery_fails_and_says_discovery_must_be_allowed(capsys, monkeypatch):
    server = FakeAPIServer({("/api", None): [status(403, "Forbidden", 'forbidden: User "u" cannot get path "/api"')]})
    result = run({"label_selectors": ["app=x"], "namespaces": ["llm"]}, capsys, monkeypatch, server)
    assert result["failed"] and result["status"] == 403 and result["api_calls"] == 1
    assert result["msg"] == ('forbidden by the API server at https://k8s.test:6443 (403): forbidden: User "u" cannot get path '
                             '"/api"; API discovery (GET /api, /apis) must be allowed')


def test_rejected_credentials(capsys, monkeypatch):
    server = FakeAPIServer({("/api", None): [status(401, "Unauthorized", "Unauthorized")]})
    result = run({"label_selectors": ["app=x"], "namespaces": ["llm"]}, capsys, monkeypatch, server)
    assert result["failed"] and "rejected the credentials (401 Unauthorized)" in result["msg"] and result["api_calls"] == 1


@pytest.mark.parametrize("args, msg", [
    ({"label_selectors": ["app"], "namespaces": ["llm"]}, "has no key=value requirement"),
    ({"label_selectors": ["app=x"], "namespaces": ["llm", " "]}, "namespaces has an empty entry"),
    ({"label_selectors": ["app=x"]}, "nothing to list: give namespaces, cluster_scoped=true, or both"),
    ({"label_selectors": ["app=x"], "namespaces": ["llm"], "page_size": 0}, "page_size must be a positive number"),
    ({"label_selectors": ["app=x"], "namespaces": ["llm"], "request_timeout": 0}, "request_timeout must be at least 1 second"),
])
def test_bad_options_fail_before_any_request(capsys, monkeypatch, args, msg):
    server = FakeAPIServer({})
    result = run(args, capsys, monkeypatch, server)
    assert result["failed"] and msg in result["msg"] and result["api_calls"] == 0 and server.requests == []
