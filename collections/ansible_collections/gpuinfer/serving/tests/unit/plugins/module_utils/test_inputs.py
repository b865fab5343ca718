# -*- coding: utf-8 -*-
from __future__ import absolute_import, division, print_function

__metaclass__ = type

import glob
import os

import pytest
import yaml
from ansible.errors import AnsibleUndefinedVariable

from ansible_collections.gpuinfer.serving.plugins.module_utils.deploy.engines import registry as engines
from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs
from ansible_collections.gpuinfer.serving.plugins.module_utils.inputs import (
    SHARED_INPUTS,
    InputError,
    check,
    parse_quantity,
    validate,
)

# Each engine's role variables come from its description (engine_<name>.py).
ENGINE_INPUTS = dict((name, engine.inputs) for name, engine in engines.ENGINES.items())

COLLECTION = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "..", ".."))
GIB = 2 ** 30

# Playbook-wide variables that no role declares (read by the playbooks themselves).
PLAYBOOK_VARS = {
    "gpuinfer_name", "gpuinfer_namespace", "gpuinfer_kubeconfig", "gpuinfer_kube_context", "gpuinfer_render_dir",
    "gpuinfer_api_outage_timeout", "gpuinfer_plan", "gpuinfer_plan_file", "gpuinfer_verify_log",
    "gpuinfer_verify_tolerance", "gpuinfer_validate_cluster", "gpuinfer_require_gpu_operator",
    "gpuinfer_install_gpu_operator", "gpuinfer_teardown_cache", "gpuinfer_tolerations", "gpuinfer_shm_size",
    "gpuinfer_replicas", "gpuinfer_deployment_mode",
}


def all_tables():
    table = dict(SHARED_INPUTS)
    for engine_table in ENGINE_INPUTS.values():
        table.update(engine_table)
    return table


def role_options():
    """{option: [spec, ...]} of every entry point of every role."""
    options = {}
    for path in glob.glob(os.path.join(COLLECTION, "roles", "*", "meta", "argument_specs.yml")):
        with open(path) as handle:
            document = yaml.safe_load(handle)
        for entry in document["argument_specs"].values():
            for name, spec in (entry.get("options") or {}).items():
                options.setdefault(name, []).append(spec)
    return options


def ok(name, value, spec):
    return validate(name, value, spec)


def bad(spec, value, name="var"):
    with pytest.raises(InputError) as info:
        validate(name, value, spec)
    return str(info.value)


# ---------------------------------------------------------------------------
# parse_quantity: the resource.Quantity grammar
# ---------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("1.5Gi", 1610612736),
    ("16Gi", 16 * GIB),
    ("500Gi", 500 * GIB),
    ("1Ki", 1024),
    ("2Mi", 2 * 2 ** 20),
    ("1Ti", 2 ** 40),
    ("1Pi", 2 ** 50),
    ("1Ei", 2 ** 60),
    ("500m", 1),           # half a CPU rounds up to a whole unit
    ("1500m", 2),
    ("2000m", 2),
    ("100n", 1),
    ("100u", 1),
    ("1k", 1000),
    ("2M", 2 * 10 ** 6),
    ("3G", 3 * 10 ** 9),
    ("1T", 10 ** 12),
    ("1P", 10 ** 15),
    ("2E", 2 * 10 ** 18),  # E alone is the exa suffix
    ("1e3", 1000),         # e followed by digits is an exponent
    ("1E3", 1000),
    ("1.5e3", 1500),
    ("12e-1", 2),
    ("+8", 8),
    ("0", 0),
    (".5", 1),
    ("1.", 1),
    ("8", 8),
    (8, 8),
    (2.5, 3),
    (0, 0),
])
def test_parse_quantity(text, expected):
    assert parse_quantity(text) == expected
    assert isinstance(parse_quantity(text), int)


@pytest.mark.parametrize("text", [
    "-1", "-500m", "-1Gi", "-0.5", -3,           # negatives
    "", "abc", "Gi", "1GB", "1gi", "1 Gi", " 1Gi", "1Gi ", "1.5.5", "--1", "1e", "1e3.5", "1Ki2", "0x10",
    "1e99999999", "9Ei", "1e19",                 # beyond int64
    True, False, None, [1], {"a": 1}, float("nan"), float("inf"),
])
def test_parse_quantity_refuses(text):
    with pytest.raises(InputError) as info:
        parse_quantity(text)
    message = str(info.value)
    assert "quantity" in message
    if message.startswith("must be") or "negative" in message:
        assert "500Gi" in message
    assert isinstance(info.value, ValueError)


# ---------------------------------------------------------------------------
# Validators
# ---------------------------------------------------------------------------
def test_dns_label():
    spec = {"check": "dns_label"}
    assert ok("ns", "llm-serving", spec) == "llm-serving"
    assert ok("ns", "a", spec) == "a"
    assert ok("ns", "0abc", spec) == "0abc"
    assert ok("ns", "a" * 63, spec)
    for value in ("Bad_NS", "UPPER", "-x", "x-", "a.b", "", "a" * 64, "a b", 5, None, ["x"]):
        assert "DNS label" in bad(spec, value)
    assert "64 characters" in bad(spec, "a" * 64)
    short = {"check": "dns_label", "max_len": 40}
    assert "at most 40" in bad(short, "a" * 41)
    letter = {"check": "dns_label", "start": "letter"}
    assert "RFC 1035" in bad(letter, "70b")
    assert ok("n", "llama-70b", letter)


def test_dns_subdomain():
    spec = {"check": "dns_subdomain"}
    for value in ("fast-ssd", "nfs.csi.k8s.io", "a", "gp3"):
        assert ok("sc", value, spec) == value
    for value in ("Bad_SC", "a..b", ".a", "a.", "-a.b", "A.b", "", "a" * 254, "a/b", 3, {"a": 1}):
        assert "DNS subdomain" in bad(spec, value)
    assert "DNS subdomain" in bad(spec, "a" * 64 + ".b")  # a label longer than 63
    wildcard = {"check": "dns_subdomain", "wildcard": True}
    assert ok("h", "*.example.com", wildcard)
    assert "DNS subdomain" in bad(spec, "*.example.com")


def test_port():
    spec = {"check": "port"}
    assert ok("p", 8000, spec) == 8000
    assert ok("p", "8000", spec) == 8000   # -e k=v gives strings
    assert ok("p", 1, spec) == 1
    assert ok("p", 65535, spec) == 65535
    for value in (0, 65536, 70000, "70000", -1, "http", "80.5", 80.5, True, False, None, [80], ""):
        assert "port number 1-65535" in bad(spec, value)
    assert "got a boolean" in bad(spec, True)


def test_int_range():
    spec = {"check": "int_range", "min": 1, "max": 100}
    assert ok("r", "5", spec) == 5
    assert ok("r", 100, spec) == 100
    assert ok("r", 3.0, spec) == 3
    for value in (0, 101, "0", "1.5", "ten", True, None, [], "-1"):
        assert "whole number 1-100" in bad(spec, value)
    assert "whole number >= 0" in bad({"check": "int_range", "min": 0}, -1)
    assert ok("r", 10 ** 12, {"check": "int_range", "min": 0}) == 10 ** 12


def test_number_range():
    spec = {"check": "number_range", "min": 0, "max": 1, "min_exclusive": True}
    assert ok("f", 0.9, spec) == 0.9
    assert ok("f", "0.25", spec) == 0.25
    assert ok("f", 1, spec) == 1
    for value in (0, "0", 1.1, -0.5, "x", True, None, float("nan"), "1e400"):
        assert "number > 0 and <= 1" in bad(spec, value)
    assert "number >= 0" in bad({"check": "number_range", "min": 0}, -1)


def test_quantity_validator():
    spec = {"check": "quantity"}
    assert ok("s", "500Gi", spec) == "500Gi"
    assert ok("s", "500m", spec) == "500m"
    assert ok("s", 2 * GIB, spec) == 2 * GIB
    for value in ("0", "0Gi", 0, "-1Gi", "lots", "", None, True):
        assert "500Gi" in bad(spec, value)
    assert "greater than zero" in bad(spec, "0")
    empty_ok = {"check": "quantity", "empty_ok": True}
    assert ok("s", "", empty_ok) == ""
    assert ok("s", None, empty_ok) == ""


def test_list():
    spec = {"check": "list"}
    assert ok("l", ["--a"], spec) == ["--a"]
    assert ok("l", ("--a",), spec) == ["--a"]
    assert ok("l", [], spec) == []
    message = bad(spec, "notalist", name="vllm_extra_args")
    assert message == ("must be a list such as ['--flag'], got the string 'notalist' "
                       "(pass lists as JSON: -e '{\"vllm_extra_args\": [...]}')")
    assert "got the string '[\"--a\"]'" in bad(spec, '["--a"]')  # a string that looks like a list is still a string
    assert "got a dict" in bad(spec, {"a": 1})
    assert "got null" in bad(spec, None)
    assert "got the number 3" in bad(spec, 3)


def test_list_of_str():
    spec = {"check": "list_of_str"}
    assert ok("l", ["--a", "1", 2], spec) == ["--a", "1", 2]
    assert "item 1 must be a string, got a dict" in bad(spec, ["--a", {"b": 1}])
    assert "item 0 must be a string, got null" in bad(spec, [None])
    assert "got the string" in bad(spec, "--a --b")


def test_list_of_dicts():
    spec = {"check": "list_of_dicts"}
    assert ok("t", [{"key": "a", "operator": "Exists"}], spec)
    assert "item 1 must be a dict" in bad(spec, [{"key": "a"}, "b"])
    env = {"check": "list_of_dicts", "required_keys": ["name"], "env_names": True}
    assert ok("e", [{"name": "HF_HOME", "value": "/models"}], env)
    assert "item 0 has no 'name'" in bad(env, [{"value": "x"}])
    assert "not an environment variable name" in bad(env, [{"name": "1BAD", "value": "x"}])
    assert "must be a list" in bad(env, "HF_HOME=/models")


def test_dict_and_dict_of_str():
    spec = {"check": "dict"}
    assert ok("d", {"a": {"b": 1}}, spec) == {"a": {"b": 1}}
    assert "got the string 'release=prom'" in bad(spec, "release=prom", name="labels")
    assert "-e '{\"labels\": {...}}'" in bad(spec, "release=prom", name="labels")
    assert "got a list" in bad(spec, [["a", "b"]])
    spec = {"check": "dict_of_str"}
    assert ok("d", {"release": "kube-prometheus-stack", "n": 1}, spec)
    assert "the value of enabled must be a string, got a boolean" in bad(spec, {"enabled": True})
    assert "must be a string, got a dict" in bad(spec, {"a": {"b": "c"}})
    assert "must be a dict" in bad(spec, "a=b")


@pytest.mark.parametrize("value, expected", [
    (True, True), (False, False), ("true", True), ("False", False), ("YES", True), ("no", False),
    ("1", True), ("0", False), (1, True), (0, False), ("on", True), ("Off", False),
])
def test_bool(value, expected):
    assert ok("b", value, {"check": "bool"}) is expected


@pytest.mark.parametrize("value", ["maybe", "", 2, None, [], {}, "tru"])
def test_bool_refuses(value):
    assert "must be a boolean" in bad({"check": "bool"}, value)


def test_absolute_path():
    spec = {"check": "absolute_path"}
    assert ok("p", "/models", spec) == "/models"
    for value in ("models", "./models", "", "~/models", 5, None):
        assert "absolute path" in bad(spec, value)


def test_http_url():
    spec = {"check": "http_url"}
    for value in ("http://prometheus-operated.monitoring.svc:9090", "https://example.com", "http://10.0.0.1:80/x?y=1",
                  "http://[::1]:9090"):
        assert ok("u", value, spec) == value
    for value in ("prometheus:9090", "ftp://x", "http://", "http://exa mple.com", "", None, 5, "http://x:99999"):
        assert "http:// or https:// URL" in bad(spec, value)
    assert ok("u", "", {"check": "http_url", "empty_ok": True}) == ""


def test_choices():
    spec = {"check": "choices", "choices": ["auto", "Recreate", "RollingUpdate"]}
    assert ok("c", "Recreate", spec) == "Recreate"
    assert "must be one of: auto, Recreate, RollingUpdate" in bad(spec, "recreate")
    assert "must be one of" in bad(spec, ["auto"])
    assert "must be one of" in bad(spec, True)
    numbers = {"check": "choices", "choices": [1, 2]}
    assert ok("c", "2", numbers) == 2
    empty = {"check": "choices", "choices": ["", "ReadWriteOnce"]}
    assert ok("c", "", empty) == ""
    assert 'must be one of: "", ReadWriteOnce' in bad(empty, "RWO")
    auto_bool = inputs.AUTO_OR_BOOL
    for value in ("auto", True, False, "true", "True", "no"):
        ok("c", value, auto_bool)
    assert "must be one of" in bad(auto_bool, "sometimes")


def test_str_duration_regex():
    assert ok("s", "x", {"check": "str"}) == "x"
    assert ok("s", 2.1, {"check": "str"}) == "2.1"   # a YAML number used as a tag
    assert "must be a string, got a list" in bad({"check": "str"}, ["x"])
    assert "must not be empty" in bad({"check": "str", "non_empty": True}, "")
    for value in ("15s", "1m30s", "500ms", "1h"):
        assert ok("d", value, {"check": "duration"}) == value
    for value in ("15", "fast", "0s", "", "1.5s", 15):
        assert "duration" in bad({"check": "duration"}, value)
    spec = {"check": "regex", "pattern": r"^[a-z]+$", "what": "lower-case letters"}
    assert ok("r", "abc", spec) == "abc"
    assert "must be lower-case letters" in bad(spec, "ABC")


def test_secret_values_are_never_shown():
    problems = check({"model_cache_hf_token": ["hf_secret_value"]}, SHARED_INPUTS)
    assert problems == ["model_cache_hf_token='***': must be a string, got a list"]


def test_check_skips_absent_values_and_never_raises():
    assert check({}, SHARED_INPUTS) == []
    assert check({"unknown_variable": object()}, SHARED_INPUTS) == []
    odd = check({"inference_service_port": object(), "gpuinfer_name": b"bytes", "vllm_extra_args": object()},
                all_tables())
    assert len(odd) == 3 and all("=" in message for message in odd)
    broken = check({"x": 1}, {"x": {"check": "int_range", "bogus": 1}})
    assert broken and broken[0].startswith("x=1: could not be checked")


def test_long_values_are_shortened():
    message = check({"vllm_extra_args": "x" * 500}, all_tables())[0]
    assert message.startswith("vllm_extra_args=" + "x" * 60) and "..." in message and len(message) < 400


def test_message_format_matches_the_issue():
    assert check({"inference_service_port": 70000}, SHARED_INPUTS) == [
        "inference_service_port=70000: must be a port number 1-65535"]
    assert check({"inference_service_port": "70000"}, SHARED_INPUTS) == [
        "inference_service_port=70000: must be a port number 1-65535"]


# ---------------------------------------------------------------------------
# The table of bad inputs: every one is refused with a message naming the variable
# ---------------------------------------------------------------------------
BAD_INPUTS = [
    # (variable, value, expected substring). Choices are the argument specs' alone (check_inputs reads them there:
    # tests/unit/test_check_inputs_action.py).
    ("vllm_extra_args", "notalist", "must be a list such as ['--flag'], got the string 'notalist'"),
    ("vllm_extra_args", '["--a"]', "must be a list"),
    ("vllm_extra_args", ["--a", {"b": 1}], "item 1 must be a string"),
    ("vllm_extra_env", "HF_HOME=/x", "must be a list"),
    ("vllm_extra_env", [{"value": "x"}], "has no 'name'"),
    ("vllm_master_port", 0, "port number 1-65535"),
    ("vllm_master_port", "99999", "port number 1-65535"),
    ("vllm_hf_token_secret", "HF_Token", "DNS subdomain"),
    ("vllm_workload_name", "9vllm", "RFC 1035"),
    ("vllm_hf_token_required", "maybe", "must be a boolean"),
    ("gpuinfer_namespace", "LLM-Serving", "DNS label"),
    ("gpuinfer_namespace", "llm_serving", "DNS label"),
    ("gpuinfer_namespace", "a" * 64, "64 characters"),
    ("gpuinfer_name", "a" * 41, "41 characters"),
    ("gpuinfer_name", "Llama", "DNS label"),
    ("gpuinfer_api_outage_timeout", 0, "whole number >= 1"),
    ("gpuinfer_kubeconfig", ["a"], "must be a string"),
    ("inference_service_port", 70000, "port number 1-65535"),
    ("inference_service_port", "http", "port number 1-65535"),
    ("inference_service_port", True, "got a boolean"),
    ("inference_service_min_replicas", 0, "whole number 1-1000"),
    ("inference_service_max_replicas", "two", "whole number 1-1000"),
    ("inference_service_target_waiting", 0, "number > 0"),
    ("inference_service_keda_server_address", "prometheus:9090", "http:// or https:// URL"),
    ("inference_service_servicemonitor_labels", "release=prom", "must be a dict"),
    ("inference_service_ingress_annotations", {"a": ["b"]}, "must be a string"),
    ("inference_service_scale_down_stabilization_seconds", 7200, "whole number 0-3600"),
    ("inference_service_scrape_interval", "15", "duration"),
    ("inference_service_host", "Bad_Host.example.com", "DNS subdomain"),
    ("model_cache_storage_class", "Bad_SC", "DNS subdomain"),
    ("model_cache_storage_class", "fast..ssd", "DNS subdomain"),
    ("model_cache_size", "500GB", "Kubernetes quantity such as 500Gi"),
    ("model_cache_size", "-5Gi", "must not be negative"),
    ("model_cache_size", "0", "greater than zero"),
    ("model_cache_shm_size_override", "lots", "Kubernetes quantity"),
    ("model_cache_mount_path", "models", "absolute path"),
    ("model_cache_headroom", -0.1, "number 0-10"),
    ("model_cache_download_tolerations", "nvidia.com/gpu", "must be a list"),
    ("model_cache_download_node_selector", "pool=gpu", "must be a dict"),
    ("model_cache_run_as_user", -1, "whole number 0-2147483647"),
    ("model_cache_nim_profiles", "abc", "must be a list"),
    ("model_cache_hf_token_existing_secret", "HF", "DNS subdomain"),
    ("model_cache_shm_max_node_fraction", 1.5, "number > 0 and <= 1"),
    ("inference_common_cpu_request", "two", "Kubernetes quantity"),
    ("inference_common_memory_limit", "8 GiB", "Kubernetes quantity"),
    ("inference_common_shm_size", "", "Kubernetes quantity"),
    ("inference_common_extra_tolerations", {"key": "a"}, "must be a list"),
    ("inference_common_node_selector", ["pool=gpu"], "must be a dict"),
    ("inference_common_node_selector", {"gpu": True}, "must be a string"),
    ("inference_common_rdma_count", 0, "whole number 1-64"),
    ("inference_common_cache_mount_path", "relative/dir", "absolute path"),
    ("inference_common_priority_class", "High", "DNS subdomain"),
    ("inference_common_probe_period_seconds", 0, "whole number 1-3600"),
    ("inference_common_download_mb_s", 0, "number > 0"),
    ("inference_common_smoke_test_url", "localhost:8000", "URL"),
    ("gpu_operator_tolerations", "all", "must be a list"),
    ("gpu_operator_release_name", "a" * 54, "54 characters"),
    ("gpu_operator_chart_repo_url", "helm.ngc.nvidia.com", "URL"),
    ("plan_gpu_memory_utilization", 1.2, "number > 0 and <= 1"),
    ("plan_tensor_parallel_size", 0, "whole number 1-64"),
    ("plan_replicas", "many", "whole number 1-1000"),
    ("nim_extra_args", "--x", "must be a list"),
    ("nim_extra_env", [{"name": "A B"}], "not an environment variable name"),
    ("nim_run_as_user", -5, "whole number 0-2147483647"),
    ("nim_cache_path", "model-store", "absolute path"),
    ("nim_ngc_secret_key", "NGC API KEY", "Secret key"),
]


@pytest.mark.parametrize("name, value, expected", BAD_INPUTS, ids=["%s-%d" % (case[0], i) for i, case in enumerate(BAD_INPUTS)])
def test_bad_input_is_refused_naming_the_variable(name, value, expected):
    problems = check({name: value}, all_tables())
    assert len(problems) == 1, problems
    assert problems[0].startswith(name + "="), problems[0]
    assert expected in problems[0], problems[0]


def test_the_bad_input_table_is_large_and_varied():
    assert len(BAD_INPUTS) >= 35
    assert len(set(case[0] for case in BAD_INPUTS)) >= 30


def test_every_bad_input_together_gives_one_message_each():
    values = {}
    for name, value, _expected in BAD_INPUTS:
        values.setdefault(name, value)
    problems = check(values, all_tables())
    assert len(problems) == len(values)
    assert sorted(p.split("=", 1)[0] for p in problems) == sorted(values)


def test_known_good_inputs_pass():
    good = {
        "vllm_extra_args": ["--enable-prefix-caching"], "vllm_extra_env": [{"name": "VLLM_LOGGING_LEVEL", "value": "DEBUG"}],
        "gpuinfer_namespace": "llm-serving", "gpuinfer_name": "llama-3-1-70b", "inference_service_port": "8000",
        "model_cache_storage_class": "nfs.csi.k8s.io", "model_cache_size": "500Gi", "inference_common_cpu_request": "500m",
        "inference_common_memory_request": "64Gi", "inference_common_cpu_limit": "", "model_cache_shm_size_override": "",
        "inference_service_keda_server_address": "http://prometheus-operated.monitoring.svc:9090",
        "inference_common_node_selector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
        "inference_service_servicemonitor_labels": {"release": "kube-prometheus-stack"},
        "gpuinfer_api_outage_timeout": "120", "vllm_master_port": 29501, "inference_common_rollout_strategy": "auto",
        "nim_run_as_user": 0, "model_cache_access_mode": "", "gpu_operator_driver_preinstalled": "auto",
    }
    assert check(good, all_tables()) == []


# ---------------------------------------------------------------------------
# The tables cannot drift from the roles
# ---------------------------------------------------------------------------
def test_every_table_variable_is_declared_by_a_role_or_is_a_playbook_variable():
    declared = set(role_options())
    undeclared = sorted(name for name in all_tables() if name not in declared and name not in PLAYBOOK_VARS)
    assert undeclared == []


def test_engine_tables_hold_only_their_engine_variables():
    assert {"vllm", "nim"} <= set(ENGINE_INPUTS)
    for engine in ENGINE_INPUTS:
        assert os.path.isdir(os.path.join(COLLECTION, "roles", engine)), engine
    for engine, table in ENGINE_INPUTS.items():
        assert all(name.startswith(engine + "_") for name in table), engine
        assert not set(table) & set(SHARED_INPUTS)


def test_every_spec_names_a_validator_with_valid_parameters():
    for name, spec in all_tables().items():
        assert spec["check"] in inputs.VALIDATORS, name


def test_table_types_agree_with_the_argument_specs():
    """A list option is checked as a list, a dict option as a dict, a choices option within those choices."""
    table = all_tables()
    list_checks = ("list", "list_of_str", "list_of_dicts")
    dict_checks = ("dict", "dict_of_str")
    for name, specs in role_options().items():
        if name not in table:
            continue
        for spec in specs:
            if spec.get("type") == "list":
                assert table[name]["check"] in list_checks, name
            elif spec.get("type") == "dict":
                assert table[name]["check"] in dict_checks, name
            if spec.get("choices") and table[name]["check"] == "choices":
                assert set(map(str, table[name]["choices"])) >= set(map(str, spec["choices"])), name


def test_the_issue_variables_are_covered():
    table = all_tables()
    for name in ("vllm_extra_args", "gpuinfer_namespace", "inference_service_port", "model_cache_storage_class",
                 "model_cache_size", "inference_common_shm_size", "model_cache_shm_size_override",
                 "inference_common_cpu_request", "inference_common_memory_limit", "inference_service_keda_server_address",
                 "vllm_master_port", "nim_run_as_user", "gpuinfer_name", "gpuinfer_api_outage_timeout"):
        assert name in table, name
    ports = [name for name in table if name.endswith("_port")]
    assert ports and all(table[name]["check"] == "port" for name in ports)


def _trusted(value):
    from ansible.template import trust_as_template

    if isinstance(value, str):
        return trust_as_template(value)
    if isinstance(value, dict):
        return dict((k, _trusted(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_trusted(v) for v in value]
    return value


def _rendered_defaults():
    from ansible.parsing.dataloader import DataLoader
    from ansible.template import Templar

    defaults = {}
    for path in sorted(glob.glob(os.path.join(COLLECTION, "roles", "*", "defaults", "main.yml"))):
        with open(path) as handle:
            defaults.update(_trusted(yaml.safe_load(handle) or {}))
    templar = Templar(loader=DataLoader(), variables=defaults)
    rendered = {}
    for name, value in defaults.items():
        try:
            rendered[name] = templar.template(value)
        except AnsibleUndefinedVariable:
            pass  # refers to a fact set at run time (the plan, the engine description)
    return defaults, rendered


def test_every_role_default_passes_its_own_check():
    raw, rendered = _rendered_defaults()
    assert len(rendered) > 0.9 * len(raw)
    table = all_tables()
    checked = [name for name in rendered if name in table]
    assert len(checked) > 150
    assert check(rendered, table) == []
    # Empty string means unset wherever a role default is ''.
    empties = [name for name, value in raw.items() if value == "" and name in table]
    assert "model_cache_storage_class" in empties and "inference_common_cpu_request" in empties
    assert check(dict((name, "") for name in empties), table) == []


def test_every_argument_spec_default_passes_its_own_check():
    table = all_tables()
    defaults = {}
    for name, specs in role_options().items():
        for spec in specs:
            if "default" in spec and name in table:
                defaults[name] = spec["default"]
    assert len(defaults) > 100
    assert check(defaults, table) == []
