# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""gpu_host_facts run for real by ansible-playbook on localhost, with tests/fixtures/gpu_hosts/fake-nvidia-smi.

One playbook holds every scenario (one ansible-playbook start instead of one per test) and writes the
registered results to a JSON file that the tests below read.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest
import yaml

from ansible_collections.gpuinfer.serving.plugins.modules import gpu_host_facts
from ansible_collections.gpuinfer.serving.tests.unit.repo_fixtures import fixture_dir


FIXTURES = fixture_dir("gpu_hosts", "fake-nvidia-smi")
# The repository root: three levels above tests/fixtures/gpu_hosts.
REPO = os.path.dirname(os.path.dirname(os.path.dirname(FIXTURES))) if FIXTURES else None
pytestmark = pytest.mark.skipif(FIXTURES is None, reason="tests/fixtures/gpu_hosts is only in the repository checkout, not in an ansible-test copy")
FAKE = os.path.join(FIXTURES or "", "fake-nvidia-smi")
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(sys.executable), "ansible-playbook")
DRIVER_DOWN = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running."


def scenario(name, args, env=None, check_mode=False):
    task = {"name": name, "gpuinfer.serving.gpu_host_facts": args, "register": name, "ignore_errors": True}
    if env:
        task["environment"] = env
    if check_mode:
        task["check_mode"] = True
    return task


def fixture_env(host, **extra):
    env = {"FAKE_NVIDIA_SMI_FIXTURE": os.path.join(FIXTURES, host)}
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    work = tmp_path_factory.mktemp("gpu_host_facts")
    fake_bin = work / "bin"
    fake_bin.mkdir()
    # Lets the default nvidia_smi_path ("nvidia-smi", looked up on PATH) find the fake.
    os.symlink(FAKE, str(fake_bin / "nvidia-smi"))
    calls_log = str(work / "calls.log")
    no_shm = str(work / "no-shm-here")
    no_ib = str(work / "no-infiniband")

    tasks = [
        scenario("dgx", {"nvidia_smi_path": FAKE, "infiniband_path": os.path.join(FIXTURES, "dgx-h100-8", "infiniband")},
                 fixture_env("dgx-h100-8", FAKE_NVIDIA_SMI_LOG=calls_log)),
        {"name": "facts_are_set", "ansible.builtin.assert": {"that": ["ansible_facts.gpu_host.max_nvlink_tp == 8", "ansible_facts.gpu_host.gpu_count == 8"]},
         "register": "facts_are_set", "ignore_errors": True},
        scenario("h200x2", {"nvidia_smi_path": FAKE, "infiniband_path": no_ib}, fixture_env("h200x2")),
        scenario("h200x2_check_mode", {"nvidia_smi_path": FAKE, "infiniband_path": no_ib}, fixture_env("h200x2"), check_mode=True),
        scenario("on_path", {"infiniband_path": no_ib, "shm_path": no_shm},
                 fixture_env("h100-pcie-nvlink-pairs", PATH="%s:%s" % (fake_bin, os.environ.get("PATH", "")))),
        scenario("missing_file", {"nvidia_smi_path": str(work / "absent" / "nvidia-smi")}),
        scenario("missing_on_path", {"nvidia_smi_path": "nvidia-smi-not-installed-here"}),
        scenario("missing_optional", {"nvidia_smi_path": str(work / "absent" / "nvidia-smi"), "optional": True, "infiniband_path": no_ib}),
        scenario("driver_down", {"nvidia_smi_path": FAKE},
                 fixture_env("h200x2", FAKE_NVIDIA_SMI_RC="9", FAKE_NVIDIA_SMI_STDERR=DRIVER_DOWN)),
        scenario("driver_down_optional", {"nvidia_smi_path": FAKE, "optional": True, "infiniband_path": no_ib},
                 fixture_env("h200x2", FAKE_NVIDIA_SMI_RC="9", FAKE_NVIDIA_SMI_STDERR=DRIVER_DOWN)),
        scenario("topo_fails", {"nvidia_smi_path": FAKE},
                 fixture_env("h200x2", FAKE_NVIDIA_SMI_RC="15", FAKE_NVIDIA_SMI_STDERR="Failed to get topology: Insufficient Permissions",
                             FAKE_NVIDIA_SMI_FAIL_ON="topo")),
        scenario("garbled_output", {"nvidia_smi_path": FAKE, "optional": True}, fixture_env(str(work / "garbled"))),
        {"name": "save", "ansible.builtin.copy": {
            "dest": str(work / "results.json"),
            "content": "{{ {'dgx': dgx, 'facts_are_set': facts_are_set, 'h200x2': h200x2, 'h200x2_check_mode': h200x2_check_mode,"
                       " 'on_path': on_path, 'missing_file': missing_file, 'missing_on_path': missing_on_path,"
                       " 'missing_optional': missing_optional, 'driver_down': driver_down, 'driver_down_optional': driver_down_optional,"
                       " 'topo_fails': topo_fails, 'garbled_output': garbled_output} | to_json }}"}},
    ]
    garbled = work / "garbled"
    garbled.mkdir()
    (garbled / "query_gpu.csv").write_text((open(os.path.join(FIXTURES, "h200x2", "query_gpu.csv")).read()))
    (garbled / "topo_m.txt").write_text("\tGPU0\tGPU1\nGPU0\t X \tNV18\nGPU1\tNV??\t X \n")
    (garbled / "smi.txt").write_text("")

    playbook = [{"name": "gpu_host_facts scenarios", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    (work / "play.yml").write_text(yaml.safe_dump(playbook, sort_keys=False))
    (work / "inventory.ini").write_text("localhost ansible_connection=local ansible_python_interpreter=%s\n" % sys.executable)
    env = dict(os.environ)
    env["ANSIBLE_COLLECTIONS_PATH"] = os.path.join(REPO, "collections")
    env["ANSIBLE_NOCOLOR"] = "1"
    completed = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", str(work / "inventory.ini"), str(work / "play.yml")],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True, timeout=300, check=False,
    )
    assert completed.returncode == 0, completed.stdout
    with open(str(work / "results.json")) as handle:
        data = json.load(handle)
    with open(calls_log) as handle:
        data["calls"] = handle.read().splitlines()
    return data


def test_dgx_facts_come_back_as_ansible_facts(results):
    result = results["dgx"]
    assert not result.get("failed"), result.get("msg")
    assert result["changed"] is False
    facts = result["ansible_facts"]["gpu_host"]
    assert facts["gpu_count"] == 8
    assert facts["gpus"][3]["pci_bus_id"] == "00000000:61:00.0"
    assert facts["nvlink_islands"] == [[0, 1, 2, 3, 4, 5, 6, 7]]
    assert facts["max_nvlink_tp"] == 8
    assert facts["all_pairs_nvlink"] is True
    assert facts["driver_version"] == "550.90.07" and facts["cuda_version"] == "12.4"
    assert len(facts["rdma_devices"]) == 8
    assert facts["infiniband_active"] is True
    assert "mlx5_5" not in facts["nccl_ib_hca"] and "mlx5_4" in facts["nccl_ib_hca"]
    assert facts["nvidia_smi_path"] == FAKE
    assert isinstance(facts["shm_bytes"], int) and facts["shm_bytes"] > 0
    assert facts["notes"] == []
    assert results["facts_are_set"].get("failed") is not True


def test_module_runs_the_three_nvidia_smi_calls_without_a_shell(results):
    assert results["calls"] == [
        "--query-gpu=index,uuid,name,memory.total,memory.used,memory.free,pci.bus_id,driver_version,compute_cap,mig.mode.current --format=csv",
        "topo -m",
        "",
    ]


def test_real_h200_capture_through_the_module(results):
    facts = results["h200x2"]["ansible_facts"]["gpu_host"]
    assert facts["gpu_count"] == 2
    assert [gpu["memory_mib"] for gpu in facts["gpus"]] == [143771, 143771]
    assert [gpu["compute_capability"] for gpu in facts["gpus"]] == ["9.0", "9.0"]
    assert facts["links"] == [{"a": 0, "b": 1, "type": "NVLINK", "nvlinks": 18, "raw": "NV18"}]
    assert facts["nvlink_islands"] == [[0, 1]] and facts["max_nvlink_tp"] == 2
    assert facts["driver_version"] == "580.159.04" and facts["cuda_version"] == "13.0"
    assert facts["rdma_devices"] == [] and facts["rdma_active"] is False


def test_check_mode_returns_the_same_facts(results):
    checked = results["h200x2_check_mode"]
    assert not checked.get("skipped"), "the module must support check mode"
    assert checked["ansible_facts"]["gpu_host"]["gpus"] == results["h200x2"]["ansible_facts"]["gpu_host"]["gpus"]


def test_default_path_finds_nvidia_smi_on_path(results):
    facts = results["on_path"]["ansible_facts"]["gpu_host"]
    assert facts["nvidia_smi_path"].endswith("/bin/nvidia-smi")
    assert facts["nvlink_islands"] == [[0, 1], [2, 3]] and facts["max_nvlink_tp"] == 2
    assert facts["shm_bytes"] is None
    assert any("no-shm-here does not exist" in note for note in facts["notes"])


def test_missing_binary_is_a_clear_failure(results):
    result = results["missing_file"]
    assert result["failed"] is True
    assert result["msg"].startswith("nvidia-smi not found at ")
    assert "/absent/nvidia-smi; install the NVIDIA driver or set nvidia_smi_path, or optional=true" in result["msg"]
    assert "Traceback" not in json.dumps(result)


def test_missing_on_path_names_the_search(results):
    result = results["missing_on_path"]
    assert result["failed"] is True
    assert "nvidia-smi not found at 'nvidia-smi-not-installed-here' on PATH" in result["msg"]
    assert "or optional=true" in result["msg"]


def test_optional_host_without_nvidia_smi_reports_zero_gpus(results):
    result = results["missing_optional"]
    assert not result.get("failed")
    facts = result["ansible_facts"]["gpu_host"]
    assert facts["gpu_count"] == 0 and facts["gpus"] == []
    assert facts["max_nvlink_tp"] == 0 and facts["nvlink_islands"] == []
    assert facts["nvidia_smi_path"] is None
    assert "nvidia-smi not found" in facts["notes"][0] and "optional=true" in facts["notes"][0]


def test_failing_nvidia_smi_shows_its_stderr(results):
    result = results["driver_down"]
    assert result["failed"] is True
    assert "failed with exit status 9" in result["msg"]
    assert DRIVER_DOWN in result["msg"]
    assert "--query-gpu=" in result["msg"]


def test_failing_nvidia_smi_on_an_optional_host_is_a_note(results):
    facts = results["driver_down_optional"]["ansible_facts"]["gpu_host"]
    assert facts["gpu_count"] == 0
    assert DRIVER_DOWN in facts["notes"][0]


def test_failing_topology_call_is_reported(results):
    result = results["topo_fails"]
    assert result["failed"] is True
    assert "fake-nvidia-smi topo -m failed with exit status 15: Failed to get topology: Insufficient Permissions" in result["msg"]


def test_unreadable_output_fails_even_when_optional(results):
    result = results["garbled_output"]
    assert result["failed"] is True
    assert "could not read the output of" in result["msg"]
    assert "cell GPU1/GPU0 is 'NV??'" in result["msg"]


def test_every_returned_fact_is_documented(results):
    documented = yaml.safe_load(gpu_host_facts.RETURN)["ansible_facts"]["contains"]["gpu_host"]["contains"]
    returned = results["dgx"]["ansible_facts"]["gpu_host"]
    assert sorted(returned) == sorted(documented)
    options = yaml.safe_load(gpu_host_facts.DOCUMENTATION)["options"]
    assert sorted(options) == ["infiniband_path", "nvidia_smi_path", "optional", "shm_path"]
