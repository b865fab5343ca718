#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
module: k8s_wait
short_description: Wait for a Kubernetes object to be ready, complete, present or gone, telling an API outage from "not ready yet"
version_added: "0.1.0"
description:
  - Polls one object through the Kubernetes API until it meets O(condition), then returns it.
  - An API server that does not answer (connection refused or reset, timeouts, HTTP 429 or 5xx) is an outage, not
    "not ready yet". A short outage is retried; one longer than O(api_outage_timeout) fails with the API server's
    URL, the object waited for and the last error. The outages seen are counted in the result.
  - Errors that retrying cannot fix fail at once - 401, 403, a 404 for the API group or kind (CRD not installed),
    a TLS certificate that does not verify. A 404 for the object itself means "not there yet".
  - With O(condition=complete), a Job whose C(Failed) or C(FailureTarget) condition is C(True) fails the task at once
    with RV(job_failed=true) and the condition's reason and message, so the caller can fetch its pods' logs.
  - Only reads from the API server. In check mode it does not wait (what check mode would have created does not
    exist) and returns RV(waited=false).
author:
  - gpuinfer.serving contributors (!UNKNOWN)
extends_documentation_fragment:
  - gpuinfer.serving.k8s_auth
options:
  api_version:
    description:
      - API version of the object, for example C(apps/v1), C(batch/v1), C(leaderworkerset.x-k8s.io/v1), C(v1).
    type: str
    default: v1
  kind:
    description:
      - Kind of the object, for example C(Deployment). The plural resource name (C(deployments)) is accepted too.
      - Looked up in the API discovery of O(api_version); a kind the server does not serve fails at once.
    type: str
    required: true
  name:
    description: Name of the object.
    type: str
    required: true
  namespace:
    description:
      - Namespace of the object; required for namespaced kinds, ignored (with a warning) for cluster-scoped ones.
    type: str
  condition:
    description:
      - V(ready) - the workload is rolled out and serving. C(Deployment) - C(observedGeneration >= generation) and
        C(updatedReplicas), C(readyReplicas), C(replicas) all equal C(spec.replicas) with as many
        C(availableReplicas). C(StatefulSet) - the same, honouring C(OnDelete) and a rolling update partition.
        C(DaemonSet) - every desired pod updated, ready and available. C(LeaderWorkerSet)
        (C(leaderworkerset.x-k8s.io)) - C(status.readyReplicas) and C(status.updatedReplicas) equal C(spec.replicas)
        (the C(Available) condition is reported). C(Pod) - its C(Ready) condition is C(True). NVIDIA C(ClusterPolicy)
        (C(nvidia.com)) - C(status.state) is C(ready). Any other kind - the object exists. An object being deleted is
        never ready.
      - V(complete) - a C(Job) has at least C(spec.completions) (default 1) succeeded pods, or its C(Complete)
        condition is C(True). A C(Failed) or C(FailureTarget) condition fails the task at once (RV(job_failed)).
      - V(exists) - the object exists.
      - V(absent) - the object does not exist (any more).
    type: str
    choices: [ready, complete, exists, absent]
    default: ready
  timeout:
    description:
      - Seconds to wait for O(condition) in all, outages included; then the task fails with a short status summary.
    type: int
    default: 600
  delay:
    description:
      - The most seconds between two polls. The pauses start at 1 second and double up to O(delay), so what
        finishes in seconds (a cached download, an unchanged workload) is seen in seconds.
    type: int
    default: 5
  pod_selector:
    description:
      - Labels of the workload's pods (all must match). With O(condition=ready) or O(condition=complete) (a Job's
        pods, for example C(job-name=<job>)), each poll also reads these pods in
        O(namespace) and looks for what keeps them from ever becoming ready by themselves - an image that cannot be
        pulled (C(ErrImagePull), C(ImagePullBackOff), C(InvalidImageName)), a container that cannot be created
        (C(CreateContainerConfigError) and the like), C(CrashLoopBackOff) (with the last exit code), a pod the
        scheduler cannot place (C(Unschedulable), with the scheduler's message) or a failed pod.
      - A problem that lasts O(stuck_timeout) seconds fails the task at once with RV(failure=stuck), the pods and
        reasons, and what to do. A Deployment past its C(progressDeadlineSeconds) (C(ProgressDeadlineExceeded)) fails it
        at the next poll.
    type: dict
  stuck_timeout:
    description:
      - Seconds a pod problem found through O(pod_selector) may last before the rollout counts as stuck; V(0) reports
        the problems in the timeout message only.
    type: int
    default: 0
  api_outage_timeout:
    description:
      - Seconds the API server may go without answering before the task fails (the roles of this collection set it
        from C(gpuinfer_api_outage_timeout)).
      - During an outage the object is polled at the latest right when this limit is reached and once more a second
        later, so the task fails soon after the limit.
      - Each request waits at most 5 seconds (or this limit, when shorter) for a connection and 10 seconds for the answer.
    type: int
    default: 60
attributes:
  check_mode:
    support: full
    description: Read-only. In check mode the module does not wait and returns RV(waited=false).
notes:
  - Needs C(get) on the object's resource and access to API discovery of O(api_version).
seealso:
  - module: kubernetes.core.k8s_info
  - module: gpuinfer.serving.gpu_cluster_info
"""

EXAMPLES = r"""
- name: Wait for the engine Deployment to be rolled out
  gpuinfer.serving.k8s_wait:
    kubeconfig: ~/.kube/config
    api_version: apps/v1
    kind: Deployment
    namespace: llm-serving
    name: llama-vllm
    condition: ready
    timeout: 1800
    delay: 10
    api_outage_timeout: "{{ gpuinfer_api_outage_timeout | default(60) }}"

- name: Wait for the multi-node engine (every group Ready), failing early on a stuck rollout
  gpuinfer.serving.k8s_wait:
    api_version: leaderworkerset.x-k8s.io/v1
    kind: LeaderWorkerSet
    namespace: llm-serving
    name: llama-405b
    timeout: 3600
    pod_selector:
      app.kubernetes.io/instance: llama-405b
    stuck_timeout: 600

- name: Wait for the model download Job
  gpuinfer.serving.k8s_wait:
    api_version: batch/v1
    kind: Job
    namespace: llm-serving
    name: download-llama
    condition: complete
    timeout: 7200
    delay: 15
  register: download
  ignore_errors: true

- name: Fetch the logs of a failed download
  kubernetes.core.k8s_log:
    namespace: llm-serving
    label_selectors:
      - job-name=download-llama
  when: download.job_failed | default(false)

- name: Wait for the GPU Operator
  gpuinfer.serving.k8s_wait:
    api_version: nvidia.com/v1
    kind: ClusterPolicy
    name: cluster-policy
    timeout: 1200

- name: Wait until the old Service is gone
  gpuinfer.serving.k8s_wait:
    kind: Service
    namespace: llm-serving
    name: llama-old
    condition: absent
"""

RETURN = r"""
waited:
  description: Whether the module polled; V(false) in check mode.
  returned: always
  type: bool
  sample: true
ready:
  description: Whether O(condition) was met (V(false) in check mode and on failure).
  returned: always
  type: bool
  sample: true
job_failed:
  description: With O(condition=complete) - the Job reported a C(Failed) or C(FailureTarget) condition.
  returned: when O(condition=complete)
  type: bool
  sample: false
resource:
  description: The object as last read (V(null) when it did not exist or was never read).
  returned: always
  type: dict
  sample: {apiVersion: apps/v1, kind: Deployment, metadata: {name: llama-vllm, namespace: llm-serving},
           status: {readyReplicas: 1, replicas: 1, updatedReplicas: 1, availableReplicas: 1}}
elapsed:
  description: Seconds spent waiting.
  returned: always
  type: float
  sample: 42.3
polls:
  description: Times the object was requested (failed requests included).
  returned: always
  type: int
  sample: 9
outages:
  description: API server outages seen (a run of requests that got no answer counts as one).
  returned: always
  type: int
  sample: 1
longest_outage:
  description: Seconds of the longest outage (the current one included when the task fails during one).
  returned: always
  type: float
  sample: 12.0
failure:
  description:
    - Why the wait failed - V(timeout), V(api_outage) (the API server did not answer for longer than
      O(api_outage_timeout)), V(api_error) (an error retrying cannot fix), V(job_failed), V(stuck) (a pod problem
      lasted O(stuck_timeout), or C(ProgressDeadlineExceeded)) or V(unsupported) (O(condition=complete) for a kind
      other than Job).
  returned: failure
  type: str
  sample: api_outage
problems:
  description:
    - With O(pod_selector) - what kept the workload's pods from becoming ready at the last poll, each with C(pod),
      C(container), C(kind) (C(image), C(config), C(crash), C(unschedulable), C(failed) or C(deadline)), C(reason),
      C(message) and C(seconds) (how long it has lasted).
  returned: when O(pod_selector) is set and the object was read
  type: list
  elements: dict
  sample: [{pod: llama-vllm-7c9d-abcde, container: vllm, kind: image, reason: ImagePullBackOff, seconds: 31.0,
            message: 'Back-off pulling image "vllm/vllm-openai:v9.9.9"'}]
api_server:
  description: URL of the API server polled.
  returned: always
  type: str
  sample: https://127.0.0.1:29443
"""

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover - Python 2
    from urllib import quote

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.gpuinfer.serving.plugins.module_utils.kube import k8s_wait as waiting
from ansible_collections.gpuinfer.serving.plugins.module_utils.kube.k8s_auth import (
    AUTH_ARG_SPEC,
    authenticate,
    build_configuration,
    get_json,
    require_kubernetes,
)

try:
    from kubernetes.client import ApiClient
except ImportError:  # pragma: no cover - reported through require_kubernetes
    ApiClient = None


CONNECT_TIMEOUT = 5
READ_TIMEOUT = 10
# One urllib3 retry covers a pooled keep-alive connection the server closed; more would hide an outage.
CONNECTION_RETRIES = 1


class ObjectReader(object):
    """``fetch`` for the Waiter: resolves the kind through API discovery once, then GETs the object."""

    def __init__(self, client, target, request_timeout):
        self.client = client
        self.target = target
        self.timeout = request_timeout
        self.path = None
        self.warnings = []

    def _get(self, path):
        # An error answer raises the status's ApiException subclass (ServiceException for 5xx, NotFoundException ...).
        return get_json(self.client, path, "application/json", self.timeout)

    def _resolve(self):
        target = self.target
        base = waiting.group_version_path(target.api_version)
        plural, namespaced, kind = waiting.find_resource(self._get(base), target.kind)
        target.kind = kind
        if namespaced:
            if not target.namespace:
                raise waiting.WaitSetupError("%s %s is namespaced: set namespace" % (kind, target.name))
            base += "/namespaces/%s" % quote(target.namespace, safe="")
        elif target.namespace:
            self.warnings.append("%s is cluster-scoped: namespace %s ignored" % (kind, target.namespace))
            target.namespace = None
        return "%s/%s/%s" % (base, plural, quote(target.name, safe=""))

    def pod_lister(self, namespace, labels):
        selector = ",".join("%s=%s" % (key, labels[key]) for key in sorted(labels))
        path = "/api/v1/namespaces/%s/pods?labelSelector=%s" % (quote(namespace, safe=""), quote(selector, safe=""))

        def list_pods():
            return (self._get(path) or {}).get("items") or []
        return list_pods

    def fetch(self):
        if self.path is None:
            self.path = self._resolve()
        return self._get(self.path)


def run_module():
    argument_spec = dict(
        api_version=dict(type="str", default="v1"),
        kind=dict(type="str", required=True),
        name=dict(type="str", required=True),
        namespace=dict(type="str"),
        condition=dict(type="str", default="ready", choices=list(waiting.CONDITIONS)),
        timeout=dict(type="int", default=600),
        delay=dict(type="int", default=5),
        api_outage_timeout=dict(type="int", default=60),
        pod_selector=dict(type="dict"),
        stuck_timeout=dict(type="int", default=0),
    )
    argument_spec.update(AUTH_ARG_SPEC)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True)
    params = module.params
    empty = dict(changed=False, waited=False, ready=False, resource=None, elapsed=0.0, polls=0, outages=0, longest_outage=0.0)
    if params["condition"] == "complete":
        empty["job_failed"] = False
    require_kubernetes(module, **empty)
    for option, minimum in (("timeout", 0), ("delay", 1), ("api_outage_timeout", 1), ("stuck_timeout", 0)):
        if params[option] < minimum:
            module.fail_json(msg="%s must be at least %d seconds, got %s" % (option, minimum, params[option]), **empty)

    configuration = authenticate(module, build_configuration, **empty)
    configuration.retries = CONNECTION_RETRIES
    host = configuration.host
    empty["api_server"] = host
    target = waiting.Target(params["api_version"], params["kind"], params["name"], params["namespace"])

    if module.check_mode:
        module.exit_json(
            msg="check mode: not waiting for %s %s (what check mode would have created does not exist)"
            % (target.describe(), waiting.WAITING_PHRASE[params["condition"]]),
            **empty
        )

    client = ApiClient(configuration)
    reader = ObjectReader(client, target, (min(CONNECT_TIMEOUT, params["api_outage_timeout"]), READ_TIMEOUT))
    list_pods = None
    if params["pod_selector"] and params["condition"] in ("ready", "complete"):
        if not params["namespace"]:
            module.fail_json(msg="pod_selector needs namespace (the pods are read there)", **empty)
        list_pods = reader.pod_lister(params["namespace"], params["pod_selector"])
    waiter = waiting.Waiter(
        reader.fetch,
        target,
        params["condition"],
        timeout=params["timeout"],
        delay=params["delay"],
        api_outage_timeout=params["api_outage_timeout"],
        server=host,
        list_pods=list_pods,
        stuck_timeout=params["stuck_timeout"],
        backoff=True,
    )
    failure = None
    try:
        result = waiter.run()
    except waiting.WaitFailed as exc:
        failure = exc
    finally:
        client.close()

    for warning in reader.warnings:
        module.warn(warning)
    if failure is not None:
        # Outside the except block: a wait that failed is an answer, not a crash to attach a traceback to.
        module.fail_json(msg=failure.msg, failure=failure.reason, changed=False, **failure.result)
    module.exit_json(changed=False, **result)


def main():
    run_module()


if __name__ == "__main__":
    main()
