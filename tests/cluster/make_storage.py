#!/usr/bin/env python3
"""Give the simulated cluster storage: a default StorageClass and a pool of PersistentVolumes.

There is no CSI driver and no kubelet, so nothing provisions or mounts volumes. The real
PersistentVolume controller of kube-controller-manager still binds claims to matching volumes,
which is what the scheduler waits for before it places a pod that mounts a claim. A pool of
pre-made volumes (ReadWriteOnce and ReadWriteMany, large enough for any model cache) lets the
roles' claims bind exactly as they would on a cluster with static provisioning.

Usage:
    make_storage.py --kubeconfig K [--volumes 120] [--size 4Ti]
"""

from __future__ import annotations

import argparse
import sys

from kubernetes import client, config
from kubernetes.client.rest import ApiException

STORAGE_CLASS = "sim-standard"
POOL_LABEL = "sim.gpuinfer.io/volume-pool"


def ensure(create, *args):
    try:
        create(*args)
    except ApiException as exc:
        if exc.status != 409:  # already there from an earlier `up`
            raise


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--volumes", type=int, default=120)
    parser.add_argument("--size", default="4Ti")
    args = parser.parse_args()

    configuration = client.Configuration()
    config.load_kube_config(config_file=args.kubeconfig, client_configuration=configuration)
    api = client.ApiClient(configuration)
    storage = client.StorageV1Api(api)
    core = client.CoreV1Api(api)

    ensure(storage.create_storage_class, {
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS, "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        # Static volumes only: claims bind to the pool below as soon as they are created.
        "provisioner": "kubernetes.io/no-provisioner",
        "volumeBindingMode": "Immediate",
        "reclaimPolicy": "Retain",
    })
    for index in range(args.volumes):
        ensure(core.create_persistent_volume, {
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": {"name": "sim-pv-%03d" % index, "labels": {POOL_LABEL: "true"}},
            "spec": {
                "capacity": {"storage": args.size},
                "accessModes": ["ReadWriteOnce", "ReadWriteMany"],
                "storageClassName": STORAGE_CLASS,
                # Retain: a released volume is not reused, so every claim gets a clean one.
                "persistentVolumeReclaimPolicy": "Retain",
                "hostPath": {"path": "/var/lib/gpuinfer-sim/pv-%03d" % index, "type": "DirectoryOrCreate"},
            },
        })
    print("storage: StorageClass %s (default) and %d PersistentVolumes of %s" % (STORAGE_CLASS, args.volumes, args.size))
    return 0


if __name__ == "__main__":
    sys.exit(main())
