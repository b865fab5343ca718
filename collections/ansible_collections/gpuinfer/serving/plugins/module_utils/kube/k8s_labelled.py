# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Pure logic of k8s_labelled_info: API discovery parsing, list paths, label selectors, delete order.

No Ansible or network imports, so every function is unit-testable with plain documents
(the JSON bodies the API server sends).
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import re

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover - Python 2
    from urllib import quote


# Aggregated discovery (GA in Kubernetes 1.30) lists every resource of every group in one response
# (GET /apis, and GET /api for the core group); older servers ignore the first two media types and
# answer with the legacy APIGroupList / APIVersions.
AGGREGATED_DISCOVERY_ACCEPT = ", ".join(
    (
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList",
        "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList",
        "application/json",
    )
)
# Lists ask for metadata only: names, namespaces and owner references are all a teardown needs, and
# Secret or ConfigMap contents never travel. Servers (or aggregated APIs) that cannot serve the
# metadata form fall back to the full objects (the last media type).
METADATA_LIST_ACCEPT = "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json"

REQUIRED_VERBS = ("list", "delete")
# (group, resource) never listed:
# - events (core and events.k8s.io, the same objects twice) only record what happened to objects;
# - core endpoints are maintained by the endpoints controller from a Service (they copy its labels
#   but carry no owner reference) and go with it; deprecated since Kubernetes 1.33 (EndpointSlices).
SKIPPED_RESOURCES = frozenset(
    (
        ("", "events"),
        ("events.k8s.io", "events"),
        ("", "endpoints"),
    )
)

# Deletion order, lowest first. Teardown deletes one object after the other and waits for each to be gone:
# 0. autoscalers first: an HPA or KEDA ScaledObject left behind scales its target back up (KEDA even
#    recreates the HPA it owns) while the target is being deleted, and errors once the target is gone;
# 1. workload controllers next: they recreate any pod deleted before them;
# 2. then bare pods (those no controller owns; owned pods go with their controller);
# 3. then everything the pods use or that points at them (Services, ConfigMaps, Secrets, PDBs, routes,
#    ServiceMonitors ...): deleted after the pods, a restarting pod never finds its configuration missing
#    and traffic never reaches a Service without endpoints while pods still run;
# 4. PersistentVolumeClaims last: the kubernetes.io/pvc-protection finalizer keeps a claim until no pod
#    mounts it, so deleting it earlier would only make the wait for it as long as the pods' shutdown.
DELETE_RANKS = {
    "HorizontalPodAutoscaler": 0,
    "VerticalPodAutoscaler": 0,
    "ScaledObject": 0,
    "ScaledJob": 0,
    "CronJob": 1,
    "LeaderWorkerSet": 1,
    "Deployment": 1,
    "StatefulSet": 1,
    "DaemonSet": 1,
    "ReplicaSet": 1,
    "ReplicationController": 1,
    "Job": 1,
    "Pod": 2,
    "PersistentVolumeClaim": 4,
}
DEFAULT_DELETE_RANK = 3

# One equality requirement (k=v or k==v) of a label selector.
_EQUALITY = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._/-]*)\s*==?\s*([A-Za-z0-9][A-Za-z0-9._-]*)\s*$")


class DiscoveryError(Exception):
    """A discovery document this module cannot read."""


class SelectorError(Exception):
    """Label selectors that would select too much (or nothing sensible)."""


def api_version(group, version):
    """``apps/v1`` for a named group, ``v1`` for the core group."""
    return "%s/%s" % (group, version) if group else version


def group_version_path(group, version):
    """Discovery path of one group version: ``/api/v1`` or ``/apis/<group>/<version>``."""
    return "/apis/%s/%s" % (group, version) if group else "/api/%s" % version


def _resource(group, version, name, kind, namespaced, verbs):
    return {
        "group": group,
        "version": version,
        "resource": name,
        "kind": kind,
        "namespaced": bool(namespaced),
        "verbs": sorted(verbs or []),
    }


def parse_aggregated(document):
    """Read an aggregated discovery document (``APIGroupDiscoveryList`` from GET /apis or GET /api).

    Returns ``(resources, stale)``: the resources of the preferred (first listed) version of each group,
    subresources left out (they are nested under their resource in this form), and the ``group/version``
    names whose preferred version is ``Stale`` (an aggregated API whose backend does not answer: its resources
    cannot be trusted, nor listed). Returns None when the document is not aggregated discovery (an older server
    answered with the legacy form).
    """
    if not isinstance(document, dict) or document.get("kind") != "APIGroupDiscoveryList":
        return None
    resources, stale = [], []
    for item in document.get("items") or []:
        # The core group (GET /api) has no name.
        group = (item.get("metadata") or {}).get("name") or ""
        versions = item.get("versions") or []
        if not versions:
            continue
        # Versions are listed by preference, the preferred one first.
        preferred = versions[0]
        version = preferred.get("version")
        if not version:
            continue
        if preferred.get("freshness") == "Stale":
            stale.append(api_version(group, version))
            continue
        for entry in preferred.get("resources") or []:
            name = entry.get("resource")
            if not name or "/" in name:
                continue
            kind = (entry.get("responseKind") or {}).get("kind")
            resources.append(_resource(group, version, name, kind, entry.get("scope") == "Namespaced", entry.get("verbs")))
    return resources, stale


def parse_legacy_groups(document):
    """Preferred version per group from a legacy document: ``APIGroupList`` (GET /apis) or ``APIVersions``
    (GET /api, the core group, returned as group ``""``). Returns ``{group: version}``."""
    if not isinstance(document, dict):
        raise DiscoveryError("discovery answered %r; expected a JSON object" % type(document).__name__)
    kind = document.get("kind")
    if kind == "APIVersions" or (kind is None and "versions" in document and "groups" not in document):
        versions = document.get("versions") or []
        return {"": versions[0]} if versions else {}
    if kind == "APIGroupList" or "groups" in document:
        groups = {}
        for item in document.get("groups") or []:
            name = item.get("name")
            version = (item.get("preferredVersion") or {}).get("version")
            if not version and item.get("versions"):
                version = item["versions"][0].get("version")
            if name and version:
                groups[name] = version
        return groups
    raise DiscoveryError("discovery answered kind %r; expected APIGroupDiscoveryList, APIGroupList or APIVersions" % kind)


def parse_resource_list(document):
    """Resources of one group version from a legacy ``APIResourceList`` (GET /api/v1, GET /apis/<group>/<version>),
    subresources (``pods/log``, ``deployments/scale`` ...) left out."""
    group_version = document.get("groupVersion") or ""
    if not group_version:
        raise DiscoveryError("APIResourceList without groupVersion")
    group, version = group_version.rpartition("/")[::2]
    resources = []
    for entry in document.get("resources") or []:
        name = entry.get("name")
        if not name or "/" in name:
            continue
        resources.append(_resource(group, version, name, entry.get("kind"), entry.get("namespaced"), entry.get("verbs")))
    return resources


def deletable(resources):
    """The resources that can be listed and deleted (every verb of REQUIRED_VERBS), without SKIPPED_RESOURCES,
    sorted by group and name; one entry per (group, resource)."""
    chosen = {}
    for entry in resources:
        key = (entry["group"], entry["resource"])
        if key in SKIPPED_RESOURCES or key in chosen:
            continue
        if all(verb in entry["verbs"] for verb in REQUIRED_VERBS):
            chosen[key] = entry
    return [chosen[key] for key in sorted(chosen)]


def label_selector(selectors):
    """Join selector requirements into one ``labelSelector`` (all must match).

    At least one requirement must be an equality (``key=value``), so the selection can never be everything
    (``!key`` or ``key!=value`` alone match every object without that label). The API server validates the
    syntax of the rest.
    """
    requirements = [str(item).strip() for item in selectors or []]
    if not requirements:
        raise SelectorError("label_selectors is empty: at least one key=value selector is required")
    empty = [index for index, item in enumerate(requirements) if not item]
    if empty:
        raise SelectorError("label_selectors has an empty entry at position %d" % empty[0])
    if not any(_EQUALITY.match(item) for item in requirements):
        raise SelectorError(
            "label_selectors %s has no key=value requirement: at least one is required so that the selection "
            "is never every object" % requirements
        )
    return ",".join(requirements)


def list_path(resource, namespace=None):
    """Collection path of a resource, in ``namespace`` for namespaced resources."""
    base = group_version_path(resource["group"], resource["version"])
    if resource["namespaced"]:
        if not namespace:
            raise ValueError("%s is namespaced: a namespace is required" % resource["resource"])
        return "%s/namespaces/%s/%s" % (base, quote(namespace, safe=""), resource["resource"])
    return "%s/%s" % (base, resource["resource"])


def controlled(metadata):
    """True when an owner reference marks a controller: the object was made by that owner's controller (a
    ReplicaSet's pods, a Deployment's ReplicaSets, a Service's EndpointSlices ...). It inherits the owner's labels,
    is recreated by the controller if deleted on its own, and the garbage collector removes it with its owner."""
    return any(ref.get("controller") for ref in (metadata or {}).get("ownerReferences") or [])


def objects_from_list(resource, document, include_owned=False):
    """``(objects, owned)`` from one list response: ``{api_version, kind, name, namespace}`` per item (namespace
    None for cluster-scoped resources; kind and version from discovery, since list items - and metadata-only lists
    - do not name them), and how many controller-owned items were left out."""
    objects, owned = [], 0
    version = api_version(resource["group"], resource["version"])
    for item in document.get("items") or []:
        metadata = item.get("metadata") or {}
        if not metadata.get("name"):
            continue
        if not include_owned and controlled(metadata):
            owned += 1
            continue
        objects.append({
            "api_version": version,
            "kind": resource["kind"],
            "name": metadata["name"],
            "namespace": metadata.get("namespace") if resource["namespaced"] else None,
        })
    return objects, owned


def delete_rank(kind):
    return DELETE_RANKS.get(kind, DEFAULT_DELETE_RANK)


def delete_order(objects):
    """``objects`` sorted for deletion (see DELETE_RANKS for why), then by kind, namespace and name."""
    return sorted(
        objects,
        key=lambda obj: (delete_rank(obj["kind"]), obj["kind"] or "", obj["api_version"], obj.get("namespace") or "", obj["name"]),
    )
