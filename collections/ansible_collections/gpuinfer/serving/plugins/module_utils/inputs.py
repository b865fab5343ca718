# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""Type and range checks of every user-facing variable, run before anything is created.

One table per scope maps a variable name to a validator spec (data, not code): ``SHARED_INPUTS``
for the engine-independent variables (playbook-wide ``gpuinfer_*``, cache, shared workload settings,
Service, GPU Operator, planner); each engine's own variables are in its description (engine_<name>.py,
``Engine.inputs``), built from the specs here. ``check(values,
table)`` returns one message per bad variable, naming it, showing the value and what is allowed.

``parse_quantity`` is the collection's one Kubernetes quantity parser (resource.Quantity grammar).

Pure Python: no Ansible, no network.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import decimal
import json
import math
import re
from collections.abc import Mapping

string_types = (str,)


def plain(value):
    """``value`` as plain dicts, lists, str, numbers, bools and None.

    Filters receive ansible-core's lazy containers, whose values carry data tags (origin, trust): copying
    those with copy.deepcopy costs far more than the computation they feed. The containers are read
    through their public mapping and sequence interface, so every value is templated as it is read.
    """
    if isinstance(value, Mapping):
        return dict((plain(key), plain(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, str):
        return str(value)
    return value


class InputError(ValueError):
    """A value is not acceptable; the message says what is allowed (without the variable name)."""


# ---------------------------------------------------------------------------
# Kubernetes quantities
# ---------------------------------------------------------------------------
BINARY_SUFFIXES = {"Ki": 2 ** 10, "Mi": 2 ** 20, "Gi": 2 ** 30, "Ti": 2 ** 40, "Pi": 2 ** 50, "Ei": 2 ** 60}
DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
# resource.Quantity: <sign>?<digits>[.<digits>] followed by a binary SI suffix, a decimal SI suffix or an
# exponent (e/E and a signed integer). "2E" is two exa, "1e3" is one thousand.
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<decimal>[numkMGTPE])|[eE](?P<exponent>[+-]?[0-9]+))?$"
)
# Kubernetes keeps quantities in an int64 of milli-units at best; anything above 2**63 - 1 is refused.
MAX_QUANTITY = 2 ** 63 - 1
QUANTITY_HINT = "a Kubernetes quantity such as 500Gi, 16Gi, 1.5Gi, 500m, 8 or 1e3"
_CONTEXT = decimal.Context(prec=80, Emax=10 ** 6, Emin=-(10 ** 6), traps=[decimal.Overflow, decimal.InvalidOperation])


def quantity_decimal(value):
    """The exact value of a quantity as a Decimal (may be fractional, e.g. CPU 500m); InputError when it is not one."""
    if isinstance(value, bool) or value is None:
        raise InputError("must be %s" % QUANTITY_HINT)
    if isinstance(value, int):
        number = decimal.Decimal(value)
    elif isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise InputError("must be %s" % QUANTITY_HINT)
        number = decimal.Decimal(repr(value))
    elif isinstance(value, string_types):
        match = _QUANTITY.match(str(value))
        if not match:
            raise InputError("must be %s" % QUANTITY_HINT)
        exponent = match.group("exponent")
        if exponent is not None and len(exponent.lstrip("+-")) > 6:
            raise InputError("is too large for a Kubernetes quantity (at most %d)" % MAX_QUANTITY)
        try:
            number = _CONTEXT.create_decimal(match.group("number"))
            if match.group("binary"):
                number = _CONTEXT.multiply(number, decimal.Decimal(BINARY_SUFFIXES[match.group("binary")]))
            elif match.group("decimal"):
                number = _CONTEXT.scaleb(number, DECIMAL_SUFFIXES[match.group("decimal")])
            elif exponent is not None:
                number = _CONTEXT.scaleb(number, int(exponent))
        except (decimal.Overflow, decimal.InvalidOperation):
            raise InputError("is too large for a Kubernetes quantity (at most %d)" % MAX_QUANTITY)
    else:
        raise InputError("must be %s" % QUANTITY_HINT)
    if number < 0:
        raise InputError("must not be negative; must be %s" % QUANTITY_HINT)
    if number > MAX_QUANTITY:
        raise InputError("is too large for a Kubernetes quantity (at most %d)" % MAX_QUANTITY)
    return number


def parse_quantity(value):
    """A Kubernetes quantity (``"500Gi"``, ``"1.5Gi"``, ``"500m"``, ``"1e3"``, ``"2E"``, ``8``) as an int, rounded up.

    Raises InputError (a ValueError) for negatives and anything that is not a quantity.
    """
    number = quantity_decimal(value)
    whole = int(number.to_integral_value(rounding=decimal.ROUND_CEILING))
    return whole


# ---------------------------------------------------------------------------
# Showing values in messages
# ---------------------------------------------------------------------------
_PLAIN = re.compile(r"^[A-Za-z0-9_.:/@+,~-]+$")
MAX_SHOWN = 80


def _show(value, secret=False):
    """A short, unambiguous rendering of a value for a message."""
    if secret:
        return "'***'"
    if isinstance(value, string_types):
        text = str(value)
        shown = text if _PLAIN.match(text) else json.dumps(text)
    elif value is None or isinstance(value, (bool, int, float)):
        shown = json.dumps(value)
    else:
        try:
            shown = json.dumps(_plain(value), sort_keys=True, default=str)
        except Exception:  # pylint: disable=broad-except
            shown = repr(value)
    if len(shown) > MAX_SHOWN:
        shown = shown[:MAX_SHOWN - 3] + "..."
    return shown


def _plain(value):
    if isinstance(value, Mapping):
        return dict((str(k), _plain(v)) for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, string_types):
        return str(value)
    return value


def _kind(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, string_types):
        text = str(value)
        return "the string '%s'" % (text if len(text) <= MAX_SHOWN else text[:MAX_SHOWN - 3] + "...")
    if isinstance(value, int):
        return "the number %s" % value
    if isinstance(value, float):
        return "the number %r" % value
    if isinstance(value, Mapping):
        return "a dict"
    if isinstance(value, (list, tuple)):
        return "a list"
    return "a %s" % type(value).__name__


def _is_empty(value):
    return value is None or (isinstance(value, string_types) and str(value) == "")


# ---------------------------------------------------------------------------
# Validators: value (and the spec's parameters) -> normalized value, or InputError
# ---------------------------------------------------------------------------
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
_DURATION = re.compile(r"^(?=[0-9])(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?$")
_URL = re.compile(r"^https?://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9]([-A-Za-z0-9.]*[A-Za-z0-9])?)(:[0-9]{1,5})?(/[^\s]*)?$")
_INT = re.compile(r"^[+-]?[0-9]+$")
_FLOAT = re.compile(r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$")
BOOL_TRUE = ("true", "yes", "on", "1")
BOOL_FALSE = ("false", "no", "off", "0")


def _require_string(value, what):
    if isinstance(value, string_types):
        return str(value)
    raise InputError("must be %s, got %s" % (what, _kind(value)))


def check_str(value, max_len=None, non_empty=False):
    """A scalar used as a string (numbers from YAML are accepted and turned into strings)."""
    if value is None or isinstance(value, (bool, Mapping, list, tuple)):
        raise InputError("must be a string, got %s" % _kind(value))
    text = str(value) if not isinstance(value, (int, float)) else json.dumps(value)
    if non_empty and not text:
        raise InputError("must not be empty")
    if max_len is not None and len(text) > max_len:
        raise InputError("must be at most %d characters, got %d" % (max_len, len(text)))
    return text


def check_dns_label(value, max_len=63, start="alnum"):
    """An RFC 1123 label (namespace, object and instance names): lower-case alphanumerics and '-'."""
    letter = start == "letter"
    what = "a DNS label (RFC %s: lower-case letters, digits and '-', starting with a %s and ending with an alphanumeric, " \
           "at most %d characters, e.g. llm-serving)" % ("1035" if letter else "1123", "letter" if letter else "letter or digit", max_len)
    text = _require_string(value, what)
    if not text:
        raise InputError("must not be empty; must be %s" % what)
    if len(text) > max_len:
        raise InputError("is %d characters long; must be %s" % (len(text), what))
    if not (_DNS_1035_LABEL if letter else _DNS_LABEL).match(text):
        raise InputError("must be %s" % what)
    return text


def check_dns_subdomain(value, max_len=253, wildcard=False):
    """An RFC 1123 subdomain (StorageClass, Secret, PVC names; host names): dot-separated DNS labels."""
    what = "a DNS subdomain (RFC 1123: dot-separated labels of lower-case letters, digits and '-', at most %d characters, " \
           "e.g. fast-ssd or nfs.csi.k8s.io)" % max_len
    text = _require_string(value, what)
    if not text:
        raise InputError("must not be empty; must be %s" % what)
    if len(text) > max_len:
        raise InputError("is %d characters long; must be %s" % (len(text), what))
    labels = text.split(".")
    if wildcard and labels[0] == "*" and len(labels) > 1:
        labels = labels[1:]
    if not all(len(label) <= 63 and _DNS_LABEL.match(label) for label in labels):
        raise InputError("must be %s" % what)
    return text


def _to_int(value, what):
    if isinstance(value, bool):
        raise InputError("must be %s, got a boolean" % what)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value == int(value):
        return int(value)
    if isinstance(value, string_types) and _INT.match(str(value).strip()):
        return int(str(value).strip())
    raise InputError("must be %s, got %s" % (what, _kind(value)))


def whole_number(value, minimum=1, name=None, error=None):
    """``value`` as an int >= ``minimum`` (an int, an integral float or a string of digits, never a bool).

    The collection's one reading of "a positive integer" (``minimum`` 1) or "a whole number >= minimum". An unusable
    value gives None, or with ``error`` (an exception class, or any callable taking the message) raises
    ``error("<name> must be a positive integer, got <value>")`` ("a whole number >= <minimum>" for another minimum).
    """
    try:
        number = _to_int(value, "a whole number")
    except (InputError, OverflowError, ValueError):  # inf and nan are floats too
        number = None
    if number is not None and number >= minimum:
        return number
    if error is None:
        return None
    raise error("%s must be %s, got %r" % (name or "value", "a positive integer" if minimum == 1 else "a whole number >= %d" % minimum,
                                           value))


def check_port(value):
    """A TCP/UDP port: an int (or a string of digits, as -e k=v gives) 1-65535."""
    number = _to_int(value, "a port number 1-65535")
    if not 1 <= number <= 65535:
        raise InputError("must be a port number 1-65535")
    return number


def _range_text(minimum, maximum):
    if minimum is not None and maximum is not None:
        return "%s-%s" % (minimum, maximum)
    if minimum is not None:
        return ">= %s" % minimum
    if maximum is not None:
        return "<= %s" % maximum
    return "any"


def check_int_range(value, min=None, max=None):  # pylint: disable=redefined-builtin
    """A whole number within [min, max] (either bound optional); digit strings are accepted."""
    what = "a whole number %s" % _range_text(min, max)
    number = _to_int(value, what)
    if (min is not None and number < min) or (max is not None and number > max):
        raise InputError("must be %s" % what)
    return number


def check_number_range(value, min=None, max=None, min_exclusive=False):  # pylint: disable=redefined-builtin
    """A number (int or float) within [min, max], or (min, max] with min_exclusive; numeric strings are accepted."""
    if min is not None and min_exclusive:
        bounds = "> %s" % min + ("" if max is None else " and <= %s" % max)
    else:
        bounds = _range_text(min, max)
    what = "a number %s" % bounds
    if isinstance(value, bool):
        raise InputError("must be %s, got a boolean" % what)
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, string_types) and _FLOAT.match(str(value).strip()):
        number = float(str(value).strip())
    else:
        raise InputError("must be %s, got %s" % (what, _kind(value)))
    if math.isnan(number) or math.isinf(number):
        raise InputError("must be %s" % what)
    if min is not None and (number < min or (min_exclusive and number == min)):
        raise InputError("must be %s" % what)
    if max is not None and number > max:
        raise InputError("must be %s" % what)
    return value if isinstance(value, (int, float)) else number


def check_quantity(value, positive=True):
    """A Kubernetes quantity (500Gi, 500m, 1e3), greater than zero unless positive is false."""
    number = quantity_decimal(value)
    if positive and number <= 0:
        raise InputError("must be greater than zero; must be %s" % QUANTITY_HINT)
    return value if isinstance(value, string_types) else int(number.to_integral_value(rounding=decimal.ROUND_CEILING))


def _require_shape(value, types, shape, name, example, json_example):
    """``value`` when it is one of ``types``; else an error with the example and how to pass it from the command line.
    A string is refused even when it looks like the shape: Ansible would split it or read it as text."""
    if isinstance(value, types):
        return value
    raise InputError("must be a %s such as %s, got %s (pass %ss as JSON: -e '{\"%s\": %s}')"
                     % (shape, example, _kind(value), shape, name, json_example))


def check_list(value, name="var", example="['--flag']"):
    """A real list (or tuple)."""
    return list(_require_shape(value, (list, tuple), "list", name, example, "[...]"))


def check_list_of_str(value, name="var", example="['--flag']"):
    """A real list whose items are strings (numbers are accepted as strings)."""
    items = check_list(value, name=name, example=example)
    for index, item in enumerate(items):
        if item is None or isinstance(item, (bool, Mapping, list, tuple)):
            raise InputError("item %d must be a string, got %s" % (index, _kind(item)))
    return items


def check_list_of_dicts(value, name="var", example="[{'name': 'X', 'value': 'y'}]", required_keys=None, env_names=False):
    """A real list of mappings, each with the required keys (e.g. ``name`` for Kubernetes EnvVar objects)."""
    items = check_list(value, name=name, example=example)
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise InputError("item %d must be a dict such as %s, got %s" % (index, example.strip("[]"), _kind(item)))
        for key in required_keys or ():
            if _is_empty(item.get(key)):
                raise InputError("item %d has no '%s' (each item looks like %s)" % (index, key, example.strip("[]")))
        if env_names:
            env = item.get("name")
            if not isinstance(env, string_types) or not _ENV_NAME.match(str(env)):
                raise InputError("item %d: name %s is not an environment variable name (letters, digits, '_', '-', '.'; "
                                 "not starting with a digit)" % (index, _show(env)))
    return items


def check_dict(value, name="var", example="{'key': 'value'}"):
    """A real mapping."""
    return _require_shape(value, Mapping, "dict", name, example, "{...}")


def check_dict_of_str(value, name="var", example="{'key': 'value'}"):
    """A mapping of strings to strings (label maps, node selectors, annotations); numbers count as strings."""
    mapping = check_dict(value, name=name, example=example)
    for key, item in mapping.items():
        if not isinstance(key, string_types) or not str(key):
            raise InputError("keys must be non-empty strings, got %s" % _kind(key))
        if item is None or isinstance(item, (bool, Mapping, list, tuple)):
            raise InputError("the value of %s must be a string, got %s%s" % (
                _show(key), _kind(item), " (quote it: \"true\")" if isinstance(item, bool) else ""))
    return mapping


def check_bool(value):
    """True/False, 1/0, or the strings true/false/yes/no/on/off/1/0 (any case)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, string_types):
        text = str(value).strip().lower()
        if text in BOOL_TRUE:
            return True
        if text in BOOL_FALSE:
            return False
    raise InputError("must be a boolean (true/false, yes/no, 1/0), got %s" % _kind(value))


def check_absolute_path(value):
    """An absolute path (starts with /)."""
    text = _require_string(value, "an absolute path such as /models")
    if not text.startswith("/") or "\n" in text or "\x00" in text:
        raise InputError("must be an absolute path such as /models")
    return text


def check_http_url(value):
    """An http:// or https:// URL with a host name."""
    what = "an http:// or https:// URL such as http://prometheus-operated.monitoring.svc:9090"
    text = _require_string(value, what)
    match = _URL.match(text)
    if not match:
        raise InputError("must be %s" % what)
    if match.group(3) and not 1 <= int(match.group(3)[1:]) <= 65535:
        raise InputError("has a port outside 1-65535; must be %s" % what)
    return text


def check_choices(value, choices=(), ignore_case=False):
    """One of the given choices (scalars compared as strings too, so -e k=v works for numbers and booleans)."""
    allowed = ", ".join(json.dumps(c) if c == "" else str(c) for c in choices)
    if isinstance(value, (Mapping, list, tuple)) or value is None:
        raise InputError("must be one of: %s; got %s" % (allowed, _kind(value)))
    text = str(value).lower() if ignore_case else str(value)
    for choice in choices:
        if isinstance(value, bool) or isinstance(choice, bool):
            if isinstance(value, bool) and isinstance(choice, bool) and value is choice:
                return choice
            if not isinstance(value, bool):
                continue
        if value == choice or text == (str(choice).lower() if ignore_case else str(choice)):
            return choice
    raise InputError("must be one of: %s" % allowed)


def check_duration(value):
    """A Prometheus duration such as 15s, 1m30s or 500ms."""
    what = "a duration such as 15s, 1m or 500ms"
    text = _require_string(value, what)
    if not text or not _DURATION.match(text) or not re.search(r"[1-9]", text):
        raise InputError("must be %s (greater than zero)" % what)
    return text


def check_regex(value, pattern=".*", what="a matching string"):
    """A string matching the pattern; what describes it for the message."""
    text = check_str(value)
    if not re.match(pattern, text):
        raise InputError("must be %s" % what)
    return text


VALIDATORS = {
    "str": check_str,
    "dns_label": check_dns_label,
    "dns_subdomain": check_dns_subdomain,
    "port": check_port,
    "int_range": check_int_range,
    "number_range": check_number_range,
    "quantity": check_quantity,
    "list": check_list,
    "list_of_str": check_list_of_str,
    "list_of_dicts": check_list_of_dicts,
    "dict": check_dict,
    "dict_of_str": check_dict_of_str,
    "bool": check_bool,
    "absolute_path": check_absolute_path,
    "http_url": check_http_url,
    "choices": check_choices,
    "duration": check_duration,
    "regex": check_regex,
}
# Validators that take the variable name, for the "pass it as JSON" hint.
_NAMED = ("list", "list_of_str", "list_of_dicts", "dict", "dict_of_str")
# Spec keys that are not validator parameters.
_META = ("check", "empty_ok", "secret")


def validate(name, value, spec):
    """The normalized value; InputError (message without the variable name) when it is bad.

    spec: {"check": <VALIDATORS key>, "empty_ok": bool (empty string / null means unset), "secret": bool
    (never show the value), and the validator's parameters}.
    """
    if spec.get("empty_ok") and _is_empty(value):
        return ""
    validator = VALIDATORS[spec["check"]]
    params = dict((k, v) for k, v in spec.items() if k not in _META)
    if spec["check"] in _NAMED:
        params["name"] = name
    return validator(value, **params)


def describe(name, value, spec, message):
    """``name=value: message`` (the value masked for secrets)."""
    return "%s=%s: %s" % (name, _show(value, secret=bool(spec.get("secret"))), message)


def check(values, table):
    """One message per bad variable of ``table`` found in ``values`` (absent ones are skipped). Never raises."""
    problems = []
    for name in sorted(table):
        if name not in values:
            continue
        spec = table[name]
        value = values[name]
        try:
            validate(name, value, spec)
        except InputError as exc:
            problems.append(describe(name, value, spec, str(exc)))
        except Exception as exc:  # pylint: disable=broad-except
            problems.append(describe(name, value, spec, "could not be checked (%s: %s)" % (type(exc).__name__, exc)))
    return problems


# ---------------------------------------------------------------------------
# The tables
# ---------------------------------------------------------------------------
def _spec(check_name, **params):
    params["check"] = check_name
    return params


LABEL = _spec("dns_label")
LABEL_OR_EMPTY = _spec("dns_label", empty_ok=True)
# Instance names prefix object names (<name>-model-cache, <name>-hf-token, <name>-vllm-0-1...).
INSTANCE = _spec("dns_label", max_len=40)
# Service names (and LeaderWorkerSet names, which become Service names) are RFC 1035 labels.
SERVICE_NAME = _spec("dns_label", start="letter")
WORKLOAD_NAME = _spec("dns_label", start="letter", max_len=52)
SUBDOMAIN = _spec("dns_subdomain")
SUBDOMAIN_OR_EMPTY = _spec("dns_subdomain", empty_ok=True)
PORT = _spec("port")
BOOL = _spec("bool")
STR = _spec("str")
NON_EMPTY_STR = _spec("str", non_empty=True)
PATH = _spec("absolute_path")
URL = _spec("http_url")
URL_OR_EMPTY = _spec("http_url", empty_ok=True)
QUANTITY = _spec("quantity")
QUANTITY_OR_EMPTY = _spec("quantity", empty_ok=True)
COUNT = _spec("int_range", min=0)
POSITIVE = _spec("int_range", min=1)
SECONDS = _spec("int_range", min=0)
POSITIVE_SECONDS = _spec("int_range", min=1)
ID = _spec("int_range", min=0, max=2147483647)
TOLERATIONS = _spec("list_of_dicts", example="[{'key': 'nvidia.com/gpu', 'operator': 'Exists', 'effect': 'NoSchedule'}]")
ENV = _spec("list_of_dicts", required_keys=["name"], env_names=True, example="[{'name': 'X', 'value': 'y'}]")
ARGS = _spec("list_of_str", example="['--flag']")
STR_MAP = _spec("dict_of_str", example="{'key': 'value'}")
SECRET_KEY = _spec("regex", pattern=r"^[-._a-zA-Z0-9]{1,253}$", what="a Secret key (letters, digits, '-', '_', '.')")
AUTO_OR_BOOL = _spec("choices", choices=["auto", True, False, "true", "false", "yes", "no"], ignore_case=True)

SHARED_INPUTS = {
    # --- Playbook-wide --------------------------------------------------------------------------
    "gpuinfer_name": _spec("dns_label", start="letter", max_len=40),
    "gpuinfer_namespace": LABEL,
    "gpuinfer_kubeconfig": STR,
    "gpuinfer_kube_context": STR,
    "gpuinfer_render_dir": STR,
    "gpuinfer_api_outage_timeout": POSITIVE,
    "gpuinfer_revisions_kept": _spec("int_range", min=1, max=50),
    "gpuinfer_rollback_revision": COUNT,  # 0: the revision before the running one
    "gpuinfer_plan_file": STR,
    "gpuinfer_verify_log": STR,
    "gpuinfer_verify_tolerance": _spec("number_range", min=0),
    "gpuinfer_validate_cluster": BOOL,
    "gpuinfer_require_gpu_operator": BOOL,
    "gpuinfer_install_gpu_operator": BOOL,
    "gpuinfer_teardown_cache": BOOL,
    "gpuinfer_tolerations": TOLERATIONS,
    "gpuinfer_shm_size": QUANTITY,
    "gpuinfer_replicas": POSITIVE,
    "gpuinfer_plan": _spec("dict"),
    # --- plan -----------------------------------------------------------------------------------
    "plan_model": NON_EMPTY_STR,
    "plan_hub_id": STR,
    "plan_revision": NON_EMPTY_STR,
    "plan_vllm_version": STR,
    "plan_gpu": STR,
    "plan_gpu_memory_gib": _spec("number_range", min=0, min_exclusive=True),
    "plan_gpus_per_node": _spec("int_range", min=1, max=64),
    "plan_max_nodes": _spec("int_range", min=1, max=1024),
    "plan_max_model_len": POSITIVE,
    "plan_min_concurrency": POSITIVE,
    "plan_gpu_memory_utilization": _spec("number_range", min=0, max=1, min_exclusive=True),
    "plan_max_num_seqs": POSITIVE,
    "plan_max_num_batched_tokens": POSITIVE,
    "plan_tensor_parallel_size": _spec("int_range", min=1, max=64),
    "plan_pipeline_parallel_size": _spec("int_range", min=1, max=64),
    "plan_replicas": _spec("int_range", min=1, max=1000),
    "plan_input_len": POSITIVE,
    "plan_output_len": POSITIVE,
    "plan_slo_ttft_ms": _spec("number_range", min=0, min_exclusive=True),
    "plan_slo_tpot_ms": _spec("number_range", min=0, min_exclusive=True),
    "plan_request_rate": _spec("number_range", min=0, min_exclusive=True),
    "plan_output_dir": STR,
    "plan_from_file": STR,
    "plan_fail_if_no_fit": BOOL,
    # --- verify ---------------------------------------------------------------------------------
    "verify_plan": _spec("dict"),
    "verify_log_file": STR,
    "verify_namespace": LABEL,
    "verify_instance": INSTANCE,
    "verify_tolerance_pct": _spec("number_range", min=0),
    "verify_fail_below_min_concurrency": BOOL,
    "verify_output_dir": STR,
    # --- model_cache ----------------------------------------------------------------------------
    "model_cache_plan": _spec("dict"),
    "model_cache_namespace": LABEL,
    "model_cache_instance": INSTANCE,
    "model_cache_delete_claim": BOOL,
    "model_cache_create_namespace": BOOL,
    "model_cache_render_dir": STR,
    "model_cache_mount_path": PATH,
    "model_cache_existing_claim": SUBDOMAIN_OR_EMPTY,
    "model_cache_claim_name": SUBDOMAIN,
    "model_cache_size": QUANTITY_OR_EMPTY,
    "model_cache_headroom": _spec("number_range", min=0, max=10),
    "model_cache_storage_class": SUBDOMAIN_OR_EMPTY,
    "model_cache_hf_token": _spec("str", secret=True),
    "model_cache_hf_token_existing_secret": SUBDOMAIN_OR_EMPTY,
    "model_cache_hf_token_secret_name": SUBDOMAIN,
    "model_cache_ngc_api_key": _spec("str", secret=True),
    "model_cache_ngc_existing_secret": SUBDOMAIN_OR_EMPTY,
    "model_cache_ngc_secret_name": SUBDOMAIN,
    "model_cache_pull_existing_secret": SUBDOMAIN_OR_EMPTY,
    "model_cache_pull_secret_name": SUBDOMAIN,
    "model_cache_pull_registry": _spec("dns_subdomain", max_len=253),
    "model_cache_download": BOOL,
    "model_cache_model": STR,
    "model_cache_revision": NON_EMPTY_STR,
    "model_cache_download_image": NON_EMPTY_STR,
    "model_cache_nim_image": STR,
    "model_cache_nim_profiles": _spec("list_of_str", example="['tensorrt_llm-h100-fp8-tp8-throughput']"),
    "model_cache_download_backoff_limit": _spec("int_range", min=0, max=100),
    "model_cache_download_active_deadline": SECONDS,
    "model_cache_download_resources": _spec("dict", example="{'requests': {'cpu': '1', 'memory': '2Gi'}}"),
    "model_cache_download_node_selector": STR_MAP,
    "model_cache_download_tolerations": TOLERATIONS,
    "model_cache_run_as_user": ID,
    "model_cache_fs_group": ID,
    "model_cache_download_wait": BOOL,
    "model_cache_download_timeout": POSITIVE_SECONDS,
    "model_cache_download_stuck_timeout": SECONDS,
    "model_cache_download_delay": POSITIVE_SECONDS,
    "model_cache_download_log_lines": COUNT,
    "model_cache_node_memory_bytes": COUNT,
    "model_cache_shm_max_node_fraction": _spec("number_range", min=0, max=1, min_exclusive=True),
    "model_cache_shm_size_override": QUANTITY_OR_EMPTY,
    # --- inference_common (shared by the engine roles) ------------------------------------------
    "inference_common_plan": _spec("dict"),
    "inference_common_namespace": LABEL,
    "inference_common_instance": INSTANCE,
    "inference_common_replicas": _spec("int_range", min=1, max=1000),
    "inference_common_tolerate_gpu_taint": BOOL,
    "inference_common_extra_tolerations": TOLERATIONS,
    "inference_common_node_selector": STR_MAP,
    "inference_common_priority_class": SUBDOMAIN_OR_EMPTY,
    "inference_common_shm_size": QUANTITY,
    "inference_common_cache_pvc_name": SUBDOMAIN_OR_EMPTY,
    "inference_common_cache_mount_path": PATH,
    "inference_common_nccl_socket_ifname": STR,
    "inference_common_nccl_ib_hca": STR,
    "inference_common_nccl_debug": _spec("choices", choices=["", "VERSION", "WARN", "INFO", "ABORT", "TRACE"]),
    "inference_common_rdma_enabled": BOOL,
    "inference_common_rdma_resource": _spec("regex", pattern=r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
                                            what="an extended resource name such as rdma/rdma_shared_device_a"),
    "inference_common_rdma_count": _spec("int_range", min=1, max=64),
    "inference_common_cpu_request": QUANTITY_OR_EMPTY,
    "inference_common_memory_request": QUANTITY_OR_EMPTY,
    "inference_common_cpu_limit": QUANTITY_OR_EMPTY,
    "inference_common_memory_limit": QUANTITY_OR_EMPTY,
    # null: the deploy's cluster read decides.
    "inference_common_spare_gpus": _spec("int_range", min=0, empty_ok=True),
    "inference_common_pdb_enabled": BOOL,
    "inference_common_pdb_max_unavailable": COUNT,
    "inference_common_lws_exclusive_topology": STR,
    "inference_common_termination_grace_period_seconds": SECONDS,
    "inference_common_download_mb_s": _spec("number_range", min=0, min_exclusive=True),
    "inference_common_disk_read_mb_s": _spec("number_range", min=0, min_exclusive=True),
    "inference_common_probe_margin_seconds": SECONDS,
    "inference_common_probe_period_seconds": _spec("int_range", min=1, max=3600),
    "inference_common_weights_cached": BOOL,
    "inference_common_scrape_annotations": BOOL,
    "inference_common_wait": BOOL,
    "inference_common_wait_timeout": SECONDS,
    "inference_common_stuck_timeout": SECONDS,
    "inference_common_smoke_test_url": URL_OR_EMPTY,
    "inference_common_smoke_test_model": STR,
    "inference_common_smoke_test_timeout": POSITIVE_SECONDS,
    # --- inference_service ----------------------------------------------------------------------
    "inference_service_name": SERVICE_NAME,
    "inference_service_namespace": LABEL,
    "inference_service_plan": _spec("dict"),
    "inference_service_target_name": WORKLOAD_NAME,
    "inference_service_multi_node": BOOL,
    "inference_service_served_model_name": STR,
    "inference_service_port": PORT,
    "inference_service_host": _spec("dns_subdomain", wildcard=True, empty_ok=True),
    "inference_service_ingress_class": SUBDOMAIN_OR_EMPTY,
    "inference_service_ingress_annotations": STR_MAP,
    "inference_service_tls_secret": SUBDOMAIN_OR_EMPTY,
    "inference_service_gateway_name": SUBDOMAIN_OR_EMPTY,
    "inference_service_gateway_namespace": LABEL_OR_EMPTY,
    "inference_service_dashboards_namespace": LABEL_OR_EMPTY,
    "inference_service_scrape_interval": _spec("duration"),
    "inference_service_servicemonitor_labels": STR_MAP,
    "inference_service_min_replicas": _spec("int_range", min=1, max=1000),
    "inference_service_max_replicas": _spec("int_range", min=1, max=1000),
    "inference_service_target_waiting": _spec("number_range", min=0, min_exclusive=True),
    # autoscaling/v2 behavior: stabilizationWindowSeconds is 0-3600.
    "inference_service_scale_up_stabilization_seconds": _spec("int_range", min=0, max=3600),
    "inference_service_scale_down_stabilization_seconds": _spec("int_range", min=0, max=3600),
    "inference_service_hpa_force": BOOL,
    "inference_service_custom_metric_name": _spec("regex", pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$",
                                                  what="a Prometheus metric name such as vllm_num_requests_waiting"),
    "inference_service_metrics_path": PATH,
    "inference_service_waiting_series": _spec("regex", pattern=r"^[a-zA-Z_:][a-zA-Z0-9_:]*$",
                                              what="a Prometheus metric name such as vllm:num_requests_waiting"),
    "inference_service_adapter_rule": BOOL,
    "inference_service_adapter_namespace": LABEL,
    "inference_service_keda_server_address": URL,
    "inference_service_keda_polling_interval": POSITIVE_SECONDS,
    "inference_service_keda_cooldown_period": SECONDS,
    "inference_service_smoke_test": BOOL,
    "inference_service_smoke_test_url": URL,
    # --- gpu_operator ---------------------------------------------------------------------------
    "gpu_operator_namespace": LABEL,
    # Helm release names: at most 53 characters.
    "gpu_operator_release_name": _spec("dns_label", max_len=53),
    "gpu_operator_chart_repo_url": URL,
    "gpu_operator_chart_repo_name": NON_EMPTY_STR,
    "gpu_operator_chart_name": NON_EMPTY_STR,
    "gpu_operator_chart_version": NON_EMPTY_STR,
    "gpu_operator_chart_ref": STR,
    "gpu_operator_helm_binary": STR,
    "gpu_operator_driver_preinstalled": AUTO_OR_BOOL,
    "gpu_operator_driver_host_group": STR,
    "gpu_operator_driver_version": STR,
    "gpu_operator_toolkit_enabled": BOOL,
    "gpu_operator_toolkit_env": ENV,
    "gpu_operator_dcgm_exporter_enabled": BOOL,
    "gpu_operator_dcgm_service_monitor": AUTO_OR_BOOL,
    "gpu_operator_cdi_enabled": BOOL,
    "gpu_operator_nfd_enabled": BOOL,
    "gpu_operator_tolerations": TOLERATIONS,
    "gpu_operator_extra_values": _spec("dict"),
    "gpu_operator_wait": BOOL,
    "gpu_operator_wait_timeout": POSITIVE_SECONDS,
    "gpu_operator_wait_delay": POSITIVE_SECONDS,
    "gpu_operator_min_gpu_nodes": COUNT,
    "gpu_operator_render_dir": STR,
}


# ---------------------------------------------------------------------------
# Variable names: what the collection declares, and the ones it does not
# ---------------------------------------------------------------------------
# A variable whose name starts with one of these belongs to the collection: it must be declared somewhere in it.
COLLECTION_PREFIXES = ("plan_", "gpuinfer_", "vllm_", "nim_", "sglang_", "model_cache_", "inference_service_",
                       "inference_common_", "gpu_operator_", "verify_", "benchmark_", "manifests_")
_TASK_LISTS = ("block", "rescue", "always", "tasks", "pre_tasks", "post_tasks", "handlers")
_SET_FACT = ("ansible.builtin.set_fact", "set_fact")


def names_set_by(document, vars_file=False):
    """The variable names a parsed task file, playbook or vars file of the collection defines itself.

    A vars file (``vars_file``) defines its top-level keys; a task list or playbook its ``register`` targets,
    ``set_fact`` keys and the ``vars`` of plays and tasks (role parameters passed with include_role / import_role).
    """
    if vars_file:
        return set(str(key) for key in document) if isinstance(document, Mapping) else set()
    names = set()

    def walk(items):
        for item in items or []:
            if not isinstance(item, Mapping):
                continue
            for key in _TASK_LISTS:
                if isinstance(item.get(key), list):
                    walk(item[key])
            if isinstance(item.get("register"), str):
                names.add(item["register"])
            for key in _SET_FACT:
                if isinstance(item.get(key), Mapping):
                    names.update(str(name) for name in item[key] if name != "cacheable")
            if isinstance(item.get("vars"), Mapping):
                names.update(str(name) for name in item["vars"])

    walk(document if isinstance(document, list) else [])
    return names


def unknown_variables(defined, declared, prefixes=COLLECTION_PREFIXES):
    """[(name, closest declared name or None)] for each defined name with a collection prefix that is not declared."""
    import difflib  # only when a name is unknown
    declared = set(declared)
    found = []
    for name in sorted(defined):
        if not name.startswith(prefixes) or name in declared:
            continue
        same_prefix = [other for other in declared if other.startswith(name.split("_", 1)[0])]
        close = difflib.get_close_matches(name, same_prefix or declared, n=1, cutoff=0.75)
        found.append((name, close[0] if close else None))
    return found


def unknown_variable_message(name, closest):
    return "%s: no role of gpuinfer.serving declares this variable%s" % (name, " (did you mean %s?)" % closest if closest else "")


UNKNOWN_VARIABLES_HINT = ("variables of your own under the collection's prefixes: set gpuinfer_unknown_variables=warn "
                          "(or ignore)")
