# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Kubernetes authentication and API access shared by the collection's API modules.

The option names and K8S_AUTH_* environment variables mirror kubernetes.core,
documented once in the ``gpuinfer.serving.k8s_auth`` doc fragment.

The modules gpu_cluster_info, k8s_labelled_info and k8s_wait also share from here: counting HTTP requests
(count_requests), raw GETs with a chosen Accept header (get_raw, get_json), lists read page by page (read_pages),
the messages for API errors and an unreachable API server, and the steps of run_module around them
(require_kubernetes, authenticate, check_paging, read_and_exit).

This is the one module_utils that imports the kubernetes client, and only in a try block: without it, this
file still imports (HAS_KUBERNETES is False, ApiException and Urllib3HTTPError are stand-ins) and the modules
fail with missing_required_lib.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import threading

from ansible.module_utils.basic import missing_required_lib

try:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.client.rest import ApiException
    from kubernetes.config.config_exception import ConfigException
    from urllib3.exceptions import HTTPError as Urllib3HTTPError

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported through missing_required_lib
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = exc

    class ConfigException(Exception):
        pass

    class ApiException(Exception):
        status = None
        reason = None
        body = None

    class Urllib3HTTPError(Exception):
        pass


AUTH_ARG_SPEC = dict(
    kubeconfig=dict(type="path", fallback=(lambda: os.environ.get("K8S_AUTH_KUBECONFIG"),)),
    context=dict(type="str"),
    host=dict(type="str"),
    api_key=dict(type="str", no_log=True),
    validate_certs=dict(type="bool", aliases=["verify_ssl"]),
    ca_cert=dict(type="path", aliases=["ssl_ca_cert"]),
    client_cert=dict(type="path", aliases=["cert_file"]),
    client_key=dict(type="path", aliases=["key_file"], no_log=False),
)

# kubernetes.core reads these when an option is not given; do the same.
AUTH_ENV = dict(
    kubeconfig="K8S_AUTH_KUBECONFIG",
    context="K8S_AUTH_CONTEXT",
    host="K8S_AUTH_HOST",
    api_key="K8S_AUTH_API_KEY",
    validate_certs="K8S_AUTH_VERIFY_SSL",
    ca_cert="K8S_AUTH_SSL_CA_CERT",
    client_cert="K8S_AUTH_CERT_FILE",
    client_key="K8S_AUTH_KEY_FILE",
)

_TRUE = ("1", "true", "yes", "on")


class K8sAuthError(Exception):
    """Raised with a message a user can act on (no traceback)."""


def auth_params(params, environ=None):
    """Merge module params with K8S_AUTH_* environment variables (params win)."""
    environ = os.environ if environ is None else environ
    merged = {}
    for key, env_name in AUTH_ENV.items():
        value = params.get(key)
        if value is None and environ.get(env_name):
            value = environ[env_name]
            if key == "validate_certs":
                value = value.lower() in _TRUE
        merged[key] = value
    return merged


def build_configuration(params, environ=None):
    """Return a kubernetes.client.Configuration for the given auth options."""
    if not HAS_KUBERNETES:
        raise K8sAuthError("the 'kubernetes' Python client is required: %s" % KUBERNETES_IMPORT_ERROR)
    auth = auth_params(params, environ)
    configuration = k8s_client.Configuration()
    try:
        if auth["host"] and not auth["kubeconfig"]:
            configuration.host = auth["host"]
            if auth["api_key"]:
                configuration.api_key = {"authorization": "Bearer " + auth["api_key"]}
        elif auth["kubeconfig"] or os.path.exists(os.path.expanduser("~/.kube/config")):
            path = auth["kubeconfig"] or os.path.expanduser("~/.kube/config")
            if not os.path.exists(path):
                raise K8sAuthError("kubeconfig %s does not exist" % path)
            k8s_config.load_kube_config(
                config_file=path, context=auth["context"], client_configuration=configuration
            )
        else:
            k8s_config.load_incluster_config(client_configuration=configuration)
    except ConfigException as exc:
        raise K8sAuthError("cannot load Kubernetes credentials: %s" % exc)
    if auth["host"] and auth["kubeconfig"]:
        configuration.host = auth["host"]
    if auth["api_key"] and auth["kubeconfig"]:
        configuration.api_key = {"authorization": "Bearer " + auth["api_key"]}
    if auth["validate_certs"] is not None:
        configuration.verify_ssl = auth["validate_certs"]
    if auth["ca_cert"]:
        configuration.ssl_ca_cert = auth["ca_cert"]
    if auth["client_cert"]:
        configuration.cert_file = auth["client_cert"]
    if auth["client_key"]:
        configuration.key_file = auth["client_key"]
    return configuration


def api_client(params, environ=None):
    """An authenticated kubernetes.client.ApiClient."""
    return k8s_client.ApiClient(build_configuration(params, environ))


# Requests -----------------------------------------------------------------------------------------------------

# Aggregated discovery (GA in Kubernetes 1.30) lists every group with its resources in one response;
# older servers ignore the first two media types and answer with the legacy APIGroupList.
AGGREGATED_DISCOVERY_ACCEPT = ", ".join(
    (
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
        "application/json",
    )
)


class RequestCounter(object):
    """HTTP requests sent so far through one ApiClient (``count``); safe to bump from several threads."""

    def __init__(self):
        self.count = 0
        self._lock = threading.Lock()

    def add(self):
        with self._lock:
            self.count += 1


def count_requests(client):
    """Count every HTTP request ``client`` sends, whichever API class or thread issues it; the RequestCounter.

    Counting wraps the REST layer (``client.rest_client.request``), which every request goes through, so lists
    page by page, discovery and raw GETs are all counted, failed ones included.
    """
    counter = RequestCounter()
    rest = client.rest_client
    send = rest.request

    def counted(*args, **kwargs):
        counter.add()
        return send(*args, **kwargs)

    rest.request = counted
    return counter


def get_raw(client, path, accept, timeout, query=None):
    """GET ``path`` verbatim through ``client`` with the Accept header ``accept``; the response, body read.

    The generated API classes cannot send a chosen Accept header (aggregated discovery, metadata-only lists) and
    rewrite some paths (ApisApi asks for /apis/, the API server serves aggregated discovery on /apis only).
    ``query`` is a list of (name, value) pairs; ``timeout`` a number of seconds or a (connect, read) pair.
    An answer outside 2xx raises the status's ApiException subclass (NotFoundException, ServiceException ...).
    """
    if hasattr(client, "param_serialize"):
        request = client.param_serialize(
            "GET", path, query_params=query or None, header_params={"Accept": accept}, auth_settings=["BearerToken"]
        )
        response = client.call_api(*request, _request_timeout=timeout)
        response.read()
        if not 200 <= response.status <= 299:
            ApiException.from_response(http_resp=response, body=response.data, data=None)
            raise ApiException(status=response.status, reason=response.reason)  # not reached with current clients
        return response
    # kubernetes client releases before the 2025 generator
    return client.call_api(
        path, "GET", query_params=query or [], header_params={"Accept": accept}, auth_settings=["BearerToken"],
        _preload_content=False, _return_http_data_only=True, _request_timeout=timeout,
    )


def response_json(response):
    """The JSON body of a response read with ``_preload_content=False`` (or from get_raw)."""
    data = response.data
    if isinstance(data, bytes):
        data = data.decode("utf-8")
    return json.loads(data)


def get_json(client, path, accept, timeout, query=None):
    """get_raw's response as parsed JSON."""
    return response_json(get_raw(client, path, accept, timeout, query))


class ListExpired(Exception):
    """A list's continue token expired (410 Gone): the list starts over."""


# A continue token expires after ~5 minutes (etcd compaction); the list then restarts from scratch.
MAX_LIST_ATTEMPTS = 2


def read_pages(get_page, start, add, attempts=MAX_LIST_ATTEMPTS):
    """Read a list page by page, following the server's ``continue`` token; the state ``add`` built.

    ``get_page(token)`` returns one page as a dict (``token`` is None for the first page), ``start()`` a fresh
    state and ``add(state, page)`` the state with that page added. When a continue token has expired (410 Gone)
    the list starts over from ``start()``, ``attempts`` times at most; any other ApiException propagates.
    """
    for attempt in range(attempts):
        state, token = start(), None
        try:
            while True:
                try:
                    page = get_page(token)
                except ApiException as exc:
                    if exc.status == 410 and token and attempt + 1 < attempts:
                        raise ListExpired()
                    raise
                state = add(state, page)
                token = (page.get("metadata") or {}).get("continue")
                if not token:
                    return state
        except ListExpired:
            continue
    return state


# Messages -----------------------------------------------------------------------------------------------------


def _status_message(body):
    """The ``message`` of a Kubernetes Status body, None when there is none."""
    if not body:
        return None
    try:
        return json.loads(body if isinstance(body, str) else body.decode("utf-8")).get("message")
    except (ValueError, AttributeError, UnicodeDecodeError):
        return None


def api_error_message(exc, host, needs):
    """A one-line message for an ApiException from the API server at ``host``.

    ``needs`` completes the 403 message with what the account must be allowed, for example
    "the account needs get/list on nodes and pods cluster-wide".
    """
    detail = _status_message(exc.body)
    if exc.status == 401:
        return (
            "the API server at %s rejected the credentials (401 Unauthorized): check kubeconfig/context, "
            "an expired token or client certificate" % host
        )
    if exc.status == 403:
        return "forbidden by the API server at %s (403): %s; %s" % (host, detail or exc.reason, needs)
    return "the API server at %s answered %s %s: %s" % (host, exc.status, exc.reason, detail or "no details")


def unreachable_message(host, exc):
    """The message for a request that got no answer from the API server at ``host``."""
    return (
        "cannot reach the Kubernetes API server at %s: %s (check the kubeconfig server address, "
        "VPN/firewall, and that the cluster is up)" % (host, exc)
    )


# Steps of a module's run ----------------------------------------------------------------------------------------


def require_kubernetes(module, **result):
    """Fail ``module`` (with ``result``) when the kubernetes client cannot be imported."""
    if not HAS_KUBERNETES:
        module.fail_json(msg=missing_required_lib("kubernetes"), exception=str(KUBERNETES_IMPORT_ERROR), **result)


def authenticate(module, connect, **result):
    """``connect(module.params)`` (api_client, build_configuration ...), or fail ``module`` with ``result``."""
    try:
        return connect(module.params)
    except K8sAuthError as exc:
        module.fail_json(msg="cannot authenticate to Kubernetes: %s" % exc, **result)


def check_paging(module):
    """Fail ``module`` (no request made) unless its page_size and request_timeout options are at least 1."""
    params = module.params
    if params["page_size"] < 1:
        module.fail_json(msg="page_size must be a positive number of items per request, got %s" % params["page_size"], api_calls=0)
    if params["request_timeout"] < 1:
        module.fail_json(msg="request_timeout must be at least 1 second, got %s" % params["request_timeout"], api_calls=0)


def read_and_exit(module, client, reader, read, needs, bad_response=()):
    """Run ``read()`` and exit ``module`` with its result dict, ``changed=False`` and ``api_calls``.

    ``reader`` has ``api_calls`` (requests made) and ``warnings`` (warned on success). An ApiException fails with
    api_error_message (``needs`` says what a 403 lacks) and its ``status``, no answer with unreachable_message, and
    ValueError or one of ``bad_response`` with "unexpected API response". ``client`` is closed either way.
    """
    host = client.configuration.host
    try:
        result = read()
    except ApiException as exc:
        module.fail_json(msg=api_error_message(exc, host, needs), status=exc.status, api_calls=reader.api_calls)
    except (Urllib3HTTPError, OSError) as exc:
        module.fail_json(msg=unreachable_message(host, exc), api_calls=reader.api_calls)
    except tuple(bad_response) + (ValueError,) as exc:
        module.fail_json(msg="unexpected API response from %s: %s" % (host, exc), api_calls=reader.api_calls)
    finally:
        client.close()

    for warning in reader.warnings:
        module.warn(warning)
    module.exit_json(changed=False, api_calls=reader.api_calls, **result)
