# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type


class ModuleDocFragment(object):
    # Same option names and environment variables as kubernetes.core, so one
    # `module_defaults` block or one set of K8S_AUTH_* variables serves both.
    DOCUMENTATION = r"""
options:
  kubeconfig:
    description:
      - Path to an existing Kubernetes config file. When neither this nor I(host) is given,
        the client looks at C(~/.kube/config) and then at the in-cluster service account.
      - Can also be given with the E(K8S_AUTH_KUBECONFIG) environment variable.
    type: path
  context:
    description:
      - The name of a context found in the config file.
      - Can also be given with the E(K8S_AUTH_CONTEXT) environment variable.
    type: str
  host:
    description:
      - URL of the API server, for authentication without a kubeconfig.
      - Can also be given with the E(K8S_AUTH_HOST) environment variable.
    type: str
  api_key:
    description:
      - Bearer token used with I(host).
      - Can also be given with the E(K8S_AUTH_API_KEY) environment variable.
    type: str
  validate_certs:
    description:
      - Whether to verify the API server's TLS certificate.
      - Can also be given with the E(K8S_AUTH_VERIFY_SSL) environment variable.
    type: bool
    aliases: [verify_ssl]
  ca_cert:
    description:
      - Path to a CA certificate used to verify the API server.
      - Can also be given with the E(K8S_AUTH_SSL_CA_CERT) environment variable.
    type: path
    aliases: [ssl_ca_cert]
  client_cert:
    description:
      - Path to a client certificate for the API server.
      - Can also be given with the E(K8S_AUTH_CERT_FILE) environment variable.
    type: path
    aliases: [cert_file]
  client_key:
    description:
      - Path to the key of I(client_cert).
      - Can also be given with the E(K8S_AUTH_KEY_FILE) environment variable.
    type: path
    aliases: [key_file]
requirements:
  - kubernetes >= 24.2.0 (Python client)
notes:
  - The authentication options are those of M(kubernetes.core.k8s), so a play can set them once for
    both collections with C(module_defaults) and the groups C(group/kubernetes.core.k8s) and
    C(group/gpuinfer.serving.k8s).
"""
