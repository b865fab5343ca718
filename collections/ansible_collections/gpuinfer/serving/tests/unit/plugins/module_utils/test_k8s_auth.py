# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""k8s_auth's API helpers shared by gpu_cluster_info, k8s_labelled_info and k8s_wait: request counting, raw GETs,
lists page by page, the error messages and the steps of run_module around them."""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import threading

import pytest

kubernetes = pytest.importorskip("kubernetes")

from kubernetes.client import rest  # noqa: E402

from ansible_collections.gpuinfer.serving.plugins.module_utils.kube import k8s_auth  # noqa: E402
from ansible_collections.gpuinfer.serving.plugins.module_utils.kube.k8s_auth import ApiException  # noqa: E402
# The fake HTTP layer gpu_cluster_info's tests use.
from ansible_collections.gpuinfer.serving.tests.unit.plugins.modules.test_gpu_cluster_info import (  # noqa: E402
    FakeHTTPResponse,
    fake_client,
)


class FakeREST(object):
    """Records the requests; answers from ``answers`` (a list, in order), else 200 {}."""

    def __init__(self, answers=()):
        self.requests = []
        self.answers = list(answers)

    def request(self, method, url, headers=None, body=None, post_params=None, _request_timeout=None):
        self.requests.append({"method": method, "url": url, "headers": dict(headers or {}), "timeout": _request_timeout})
        status, document = self.answers.pop(0) if self.answers else (200, {})
        return rest.RESTResponse(FakeHTTPResponse(status, document))

    def close(self):
        pass


def answering(answers=()):
    """An ApiClient whose requests FakeREST answers."""
    return fake_client(FakeREST(answers))


def api_exception(status, reason, body=None):
    exc = ApiException(status=status, reason=reason)
    exc.body = body
    return exc


# --- requests ---------------------------------------------------------------------------------------------------


def test_count_requests_counts_every_request_from_every_thread():
    client = answering()
    counter = k8s_auth.count_requests(client)

    def twenty_gets():
        for dummy in range(20):
            k8s_auth.get_raw(client, "/api", "application/json", 5)

    threads = [threading.Thread(target=twenty_gets) for dummy in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counter.count == len(client.rest_client.requests) == 80


def test_get_raw_sends_the_path_verbatim_with_accept_query_and_timeout():
    client = answering([(200, {"kind": "APIGroupDiscoveryList", "items": []})])
    response = k8s_auth.get_raw(client, "/apis", k8s_auth.AGGREGATED_DISCOVERY_ACCEPT, (3, 7), [("limit", 2), ("continue", "x")])
    request = client.rest_client.requests[0]
    assert request["method"] == "GET" and request["url"] == "https://k8s.test:6443/apis?limit=2&continue=x"
    assert request["headers"]["Accept"] == k8s_auth.AGGREGATED_DISCOVERY_ACCEPT and request["timeout"] == (3, 7)
    assert k8s_auth.response_json(response) == {"kind": "APIGroupDiscoveryList", "items": []}


def test_get_json_raises_the_status_exception():
    client = answering([(404, {"kind": "Status", "message": "not found"})])
    with pytest.raises(ApiException) as caught:
        k8s_auth.get_json(client, "/api/v1/namespaces/x/pods/p", "application/json", 5)
    assert caught.value.status == 404 and json.loads(caught.value.body)["message"] == "not found"


def test_get_raw_with_a_client_from_before_the_2025_generator():
    calls = []

    class OldClient(object):
        def call_api(self, *args, **kwargs):
            calls.append((args, kwargs))
            return "response"

    assert k8s_auth.get_raw(OldClient(), "/api", "application/json", 5) == "response"
    args, kwargs = calls[0]
    assert args == ("/api", "GET")
    assert kwargs == dict(query_params=[], header_params={"Accept": "application/json"}, auth_settings=["BearerToken"],
                          _preload_content=False, _return_http_data_only=True, _request_timeout=5)


def test_response_json_takes_text_or_bytes():
    assert k8s_auth.response_json(type("R", (), {"data": b'{"a": 1}'})()) == {"a": 1}
    assert k8s_auth.response_json(type("R", (), {"data": '{"a": 1}'})()) == {"a": 1}


# --- read_pages -------------------------------------------------------------------------------------------------


def pager(answers):
    """get_page answering ``answers`` in order: a page (dict) or an ApiException to raise; records the tokens."""
    tokens = []

    def get_page(token):
        tokens.append(token)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return get_page, tokens


def page(items, token=None):
    return {"items": items, "metadata": {"continue": token} if token else {}}


def collect(state, document):
    return state + document["items"]


def test_read_pages_follows_the_continue_token():
    get_page, tokens = pager([page([1, 2], "t1"), page([3, 4], "t2"), page([5])])
    assert k8s_auth.read_pages(get_page, list, collect) == [1, 2, 3, 4, 5]
    assert tokens == [None, "t1", "t2"]


def test_read_pages_starts_over_once_when_the_token_expired():
    get_page, tokens = pager([page([1], "t1"), api_exception(410, "Gone"), page([1], "u1"), page([2])])
    assert k8s_auth.read_pages(get_page, list, collect) == [1, 2]
    assert tokens == [None, "t1", None, "u1"]


def test_read_pages_gives_up_when_the_token_expires_again():
    get_page, tokens = pager([page([1], "t1"), api_exception(410, "Gone"), page([1], "u1"), api_exception(410, "Gone")])
    with pytest.raises(ApiException) as caught:
        k8s_auth.read_pages(get_page, list, collect)
    assert caught.value.status == 410 and tokens == [None, "t1", None, "u1"]


@pytest.mark.parametrize("status", [403, 410, 500])
def test_read_pages_raises_other_errors_and_a_first_page_410(status):
    get_page, tokens = pager([api_exception(status, "No")])
    with pytest.raises(ApiException):
        k8s_auth.read_pages(get_page, list, collect)
    assert tokens == [None]


# --- messages ---------------------------------------------------------------------------------------------------

HOST = "https://k8s.test:6443"
NEEDS = "the account needs get on everything"


def test_api_error_message_401():
    msg = k8s_auth.api_error_message(api_exception(401, "Unauthorized"), HOST, NEEDS)
    assert msg == ("the API server at https://k8s.test:6443 rejected the credentials (401 Unauthorized): check "
                   "kubeconfig/context, an expired token or client certificate")


def test_api_error_message_403_quotes_the_status_message_and_says_what_is_needed():
    body = json.dumps({"kind": "Status", "message": 'pods is forbidden: User "u" cannot list resource "pods"'}).encode("utf-8")
    msg = k8s_auth.api_error_message(api_exception(403, "Forbidden", body), HOST, NEEDS)
    assert msg == ('forbidden by the API server at https://k8s.test:6443 (403): pods is forbidden: User "u" cannot list '
                   'resource "pods"; the account needs get on everything')
    assert k8s_auth.api_error_message(api_exception(403, "Forbidden"), HOST, NEEDS).endswith("(403): Forbidden; " + NEEDS)


@pytest.mark.parametrize("body, detail", [
    ('{"message": "etcdserver: request timed out"}', "etcdserver: request timed out"),
    ("<html>bad gateway</html>", "no details"),
    (b"\xff\xfe", "no details"),
    (None, "no details"),
])
def test_api_error_message_other_statuses(body, detail):
    msg = k8s_auth.api_error_message(api_exception(500, "Internal Server Error", body), HOST, NEEDS)
    assert msg == "the API server at https://k8s.test:6443 answered 500 Internal Server Error: %s" % detail


def test_unreachable_message():
    assert k8s_auth.unreachable_message(HOST, OSError("Connection refused")) == (
        "cannot reach the Kubernetes API server at https://k8s.test:6443: Connection refused (check the kubeconfig "
        "server address, VPN/firewall, and that the cluster is up)")


# --- steps of run_module ----------------------------------------------------------------------------------------


class Exited(Exception):
    pass


class FakeModule(object):
    def __init__(self, **params):
        self.params = params
        self.warnings = []
        self.result = None

    def warn(self, warning):
        self.warnings.append(warning)

    def fail_json(self, **result):
        self.result = dict(result, failed=True)
        raise Exited()

    def exit_json(self, **result):
        self.result = result
        raise Exited()


class Reader(object):
    api_calls = 3
    warnings = ["careful"]


class ClosingClient(object):
    configuration = type("Configuration", (), {"host": HOST})()
    closed = False

    def close(self):
        self.closed = True


def test_require_kubernetes(monkeypatch):
    module = FakeModule()
    k8s_auth.require_kubernetes(module, api_calls=0)
    assert module.result is None
    monkeypatch.setattr(k8s_auth, "HAS_KUBERNETES", False)
    monkeypatch.setattr(k8s_auth, "KUBERNETES_IMPORT_ERROR", ImportError("No module named 'kubernetes'"))
    with pytest.raises(Exited):
        k8s_auth.require_kubernetes(module, api_calls=0)
    assert "(kubernetes)" in module.result["msg"] and module.result["api_calls"] == 0
    assert module.result["exception"] == "No module named 'kubernetes'"


def test_authenticate():
    module = FakeModule(host="h")
    assert k8s_auth.authenticate(module, lambda params: params["host"]) == "h"

    def refuse(params):
        raise k8s_auth.K8sAuthError("kubeconfig /nope does not exist")

    with pytest.raises(Exited):
        k8s_auth.authenticate(module, refuse, api_calls=0)
    assert module.result == {"failed": True, "msg": "cannot authenticate to Kubernetes: kubeconfig /nope does not exist", "api_calls": 0}


@pytest.mark.parametrize("page_size, request_timeout, msg", [
    (0, 60, "page_size must be a positive number of items per request, got 0"),
    (500, 0, "request_timeout must be at least 1 second, got 0"),
])
def test_check_paging(page_size, request_timeout, msg):
    k8s_auth.check_paging(FakeModule(page_size=1, request_timeout=1))
    module = FakeModule(page_size=page_size, request_timeout=request_timeout)
    with pytest.raises(Exited):
        k8s_auth.check_paging(module)
    assert module.result == {"failed": True, "msg": msg, "api_calls": 0}


def test_read_and_exit_success():
    module, client = FakeModule(), ClosingClient()
    with pytest.raises(Exited):
        k8s_auth.read_and_exit(module, client, Reader(), lambda: {"nodes": []}, NEEDS)
    assert module.result == {"changed": False, "api_calls": 3, "nodes": []}
    assert module.warnings == ["careful"] and client.closed


class BadResponse(Exception):
    pass


@pytest.mark.parametrize("error, expected", [
    (api_exception(403, "Forbidden"), {"msg": "forbidden by the API server at %s (403): Forbidden; %s" % (HOST, NEEDS), "status": 403}),
    (OSError("Connection refused"), {"msg": k8s_auth.unreachable_message(HOST, "Connection refused")}),
    (k8s_auth.Urllib3HTTPError("read timed out"), {"msg": k8s_auth.unreachable_message(HOST, "read timed out")}),
    (ValueError("Expecting value"), {"msg": "unexpected API response from %s: Expecting value" % HOST}),
    (BadResponse("no items"), {"msg": "unexpected API response from %s: no items" % HOST}),
])
def test_read_and_exit_failures(error, expected):
    module, client = FakeModule(), ClosingClient()

    def read():
        raise error

    with pytest.raises(Exited):
        k8s_auth.read_and_exit(module, client, Reader(), read, NEEDS, bad_response=(BadResponse,))
    assert module.result == dict(expected, failed=True, api_calls=3)
    assert module.warnings == [] and client.closed


def test_read_and_exit_lets_other_errors_through():
    module, client = FakeModule(), ClosingClient()

    def read():
        raise KeyError("bug")

    with pytest.raises(KeyError):
        k8s_auth.read_and_exit(module, client, Reader(), read, NEEDS)
    assert client.closed
