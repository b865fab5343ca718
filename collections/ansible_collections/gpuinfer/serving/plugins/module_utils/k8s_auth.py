# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Kubernetes authentication shared by the collection's API modules.

The option names and K8S_AUTH_* environment variables mirror kubernetes.core,
documented once in the ``gpuinfer.serving.k8s_auth`` doc fragment.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import os

try:
    from kubernetes import client as k8s_client
    from kubernetes import config as k8s_config
    from kubernetes.config.config_exception import ConfigException

    HAS_KUBERNETES = True
    KUBERNETES_IMPORT_ERROR = None
except ImportError as exc:  # pragma: no cover - reported through missing_required_lib
    HAS_KUBERNETES = False
    KUBERNETES_IMPORT_ERROR = exc

    class ConfigException(Exception):
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
