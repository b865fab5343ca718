# -*- coding: utf-8 -*-
# Copyright: gpuinfer.serving contributors
# Apache License 2.0 (see LICENSE)
"""SLO-driven planning for gpu_sizing: the layout and replica count that serve a latency and rate target with the
fewest GPUs.

Pure Python (no Ansible, no torch, no network). It calls sizing.plan (memory) for each candidate layout and
performance.predict (speed) for one replica of it; both model's assumptions hold here too (closed-loop clients
sending identical requests together, p50 of a cycle, vLLM's step model).

Targets: ``slo_ttft_ms`` and ``slo_tpot_ms`` (p50 time to first token and time per output token, at the load's
input_len / output_len) and ``request_rate`` (peak requests per second the whole deployment must serve). Any may be
left out; at least one is given.

Candidates: every tensor parallel size that is a power of two, valid for the model (sizing.tp_problem) and inside one
node, with PP = 1; and, as the memory chooser does across nodes, the largest valid TP of a node with PP = 2, 3, ...
while TP x PP stays within max_nodes x gpus_per_node (never more stages than layers). A user-fixed TP and/or PP is
added and is the only layout the plan may take. Each layout is planned by sizing.plan at the plan's dtype and, where
the GPU has FP8 tensor cores and the checkpoint is bf16/fp16, with FP8 weights as well (quantization advice: vLLM
quantizes a float checkpoint online with --quantization=fp8); a layout that does not fit memory (sizing's ``fits``:
the weights and min_concurrency sequences of max_model_len within max_nodes) is dropped.

Per candidate: the highest concurrency per replica C* in [1, batch limit] (max_num_seqs, or what the KV cache holds
of input_len + output_len tokens a request; more clients only queue) whose predicted TTFT and TPOT p50 both meet the
targets - a bisection over performance.predict, whose latencies grow with concurrency - and the replica's throughput
there, requests_per_s at C*. Replicas = ceil(request_rate / that throughput) (1 without a request_rate; a user-fixed
replica count is checked instead); GPUs = replicas x TP x PP. The choice is the candidate meeting every target with
the fewest GPUs, then the lowest TPOT, then the lowest TTFT, then the fewest GPUs a replica; FP8 candidates may be
chosen only when the user left dtype to the checkpoint (dtype=auto), otherwise they are advice.

When none meets the targets, ``nearest`` gives the targets that are feasible and closest: the latency targets
relaxed to what the layout closest to them reaches at one client (only the ones missed, rounded up to 0.1 ms), and
the request rate the best layout reaches at those with at most MAX_REPLICAS replicas (or the fixed count).

Autoscaling: ``max_replicas`` is the replica count needed at request_rate. ``target_waiting`` is the queue depth per
replica (vLLM's ``vllm:num_requests_waiting``, SGLang's ``sglang:num_queue_reqs``) above which a replica holds more
than C* requests and misses the SLO: in the model, a replica at C* clients starts a cycle with C* prompts of which
the first engine step admits ceil(max_num_batched_tokens / input_len) (chunked prefill), the rest wait; so up to
C* - admitted waiting requests are within the SLO, and every client beyond C* adds one waiting request. It is at
least 1 (autoscalers need a positive target). ``target_in_flight`` = C*, the running + waiting requests a replica
may hold, is the steadier signal where the autoscaler can read both.
"""

from __future__ import absolute_import, division, print_function

__metaclass__ = type

import math

from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import performance
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import sizing

OPTIONS = ("slo_ttft_ms", "slo_tpot_ms", "request_rate")
# Most replicas the nearest feasible request rate counts on without a fixed replica count: the plan role's limit
# on plan_replicas (module_utils/inputs.py).
MAX_REPLICAS = 1000
MAX_ALTERNATIVES = 6
_EPSILON = 1e-9


class SloError(ValueError):
    """Bad input: ``field`` names the option at fault."""

    def __init__(self, field, message):
        super(SloError, self).__init__(message)
        self.field = field


def targets(slo_ttft_ms=None, slo_tpot_ms=None, request_rate=None):
    """The validated targets {ttft_ms, tpot_ms, request_rate} (None where not given), or None when none is given."""
    values = {}
    units = {"slo_ttft_ms": "milliseconds, p50 time to first token", "slo_tpot_ms": "milliseconds, p50 time per output token",
             "request_rate": "requests per second the deployment must serve"}
    for name, value in (("slo_ttft_ms", slo_ttft_ms), ("slo_tpot_ms", slo_tpot_ms), ("request_rate", request_rate)):
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
            raise SloError(name, "%s=%r must be a number greater than 0 (%s)" % (name, value, units[name]))
        values[name] = float(value)
    if not values:
        return None
    return {"ttft_ms": values.get("slo_ttft_ms"), "tpot_ms": values.get("slo_tpot_ms"), "request_rate": values.get("request_rate")}


def replica_predictor(spec, gpu_spec, result, input_len, output_len):
    """(batch limit, point(concurrency)) of one replica of a sizing.plan result: performance.predict's point at that
    many closed-loop clients, cached."""
    plan = result["plan"]
    tp, pp, dtype = plan["tensor_parallel_size"], plan["pipeline_parallel_size"], plan["dtype"]
    stage_weights, start = [], 0
    for stage, count in enumerate(plan["stage_layers"]):
        stage_weights.append(sizing.rank_weight_bytes(spec, dtype, tp, list(range(start, start + count)), stage == 0, stage == pp - 1, pp))
        start += count
    kv_per_token = spec.kv_bytes_per_token(sizing.kv_dtype_bytes(spec, dtype, plan["kv_cache_dtype"]), tp)
    shape = performance.model_shape(spec)
    cache = {}

    def predict(levels, peak):
        return performance.predict(shape, gpu_spec, tp, pp, stage_weights, plan["stage_layers"], kv_per_token,
                                   plan["max_num_seqs"], plan["max_num_batched_tokens"], dtype, input_len, output_len, levels,
                                   kv_cache_tokens=result["kv_cache_tokens"], quantization=plan["quantization"], peak=peak)

    def point(concurrency):
        if concurrency not in cache:
            cache[concurrency] = predict([concurrency], False)["points"][0]
        return cache[concurrency]

    first = predict([1], False)
    cache[1] = first["points"][0]
    return first["batch_limit"], point


def _meets(point, goals):
    if goals["ttft_ms"] is not None and point["ttft_ms"] > goals["ttft_ms"]:
        return False
    # output_len 1 has no TPOT: nothing to miss.
    if goals["tpot_ms"] is not None and point["tpot_ms"] is not None and point["tpot_ms"] > goals["tpot_ms"]:
        return False
    return True


def highest_concurrency(point, batch_limit, goals, window=0):
    """The highest client count in [1, batch_limit] whose point meets the latency goals (0 if not even one client does).

    Doubling, then bisection (small loads are the cheap ones to simulate). TTFT grows with concurrency, but the median
    request's TPOT saw-tooths: it dips each time the prompts of a cycle fill one more engine step, so a point past the
    first miss may meet the target again. ``window`` more client counts above the last one found are scanned for such a
    dip (while TTFT still meets), from each dip found.
    """
    if goals["ttft_ms"] is None and goals["tpot_ms"] is None:
        return batch_limit
    if not _meets(point(1), goals):
        return 0
    low, high = 1, 2
    while high < batch_limit and _meets(point(high), goals):
        low, high = high, high * 2
    if high >= batch_limit:
        if _meets(point(batch_limit), goals):
            return batch_limit
        high = batch_limit
    while high - low > 1:
        middle = (low + high) // 2
        if _meets(point(middle), goals):
            low = middle
        else:
            high = middle
    concurrency = low + 1
    while concurrency <= min(batch_limit, low + window):
        candidate = point(concurrency)
        if goals["ttft_ms"] is not None and candidate["ttft_ms"] > goals["ttft_ms"]:
            break
        if _meets(candidate, goals):
            low = concurrency
        concurrency += 1
    return low


def candidate_layouts(spec, gpus_per_node, max_nodes, fixed_tp=None, fixed_pp=None):
    """[(TP, PP)] to evaluate: powers of two inside a node with PP 1, the largest valid TP of a node over 2+ stages up to
    max_nodes, and the user-fixed TP/PP combination."""
    valid = sizing.valid_tensor_parallel_sizes(spec, gpus_per_node)
    limit = max_nodes * gpus_per_node
    layouts = [(tp, 1) for tp in valid if tp & (tp - 1) == 0]
    if valid:
        node_tp = max(valid)
        pp = 2
        while node_tp * pp <= limit and pp <= spec.num_layers:
            layouts.append((node_tp, pp))
            pp += 1
    if fixed_tp or fixed_pp:
        tps = [fixed_tp] if fixed_tp else [tp for tp in valid if tp & (tp - 1) == 0] or valid
        pps = [fixed_pp] if fixed_pp else sorted(set([1] + [pp for tp, pp in layouts if tp in tps and pp > 1]))
        for tp in tps:
            for pp in pps:
                if (tp, pp) not in layouts and tp * pp <= limit:
                    layouts.append((tp, pp))
    return sorted(set(layouts), key=lambda item: (item[0] * item[1], item[1]))


class _Candidate(object):
    """One layout and weight format, planned for memory, with its speed predictor."""

    def __init__(self, result, quantization, eligible, predictor, input_len):
        plan = result["plan"]
        self.result = result
        self.tp = plan["tensor_parallel_size"]
        self.pp = plan["pipeline_parallel_size"]
        self.dtype = plan["dtype"]
        self.gpus_per_replica = plan["gpus_per_replica"]
        self.quantization = quantization
        self.eligible = eligible
        self.batch_limit, self.point = predictor
        # One period of the TPOT saw-tooth: two engine steps' worth of prompts (measured on the model), at most 64.
        self.window = min(64, 2 * int(math.ceil(plan["max_num_batched_tokens"] / float(input_len))) + 2)

    def assess(self, goals, fixed_replicas):
        """{concurrency, point, replicas, gpus, met} under ``goals``; concurrency 0 when the latency goals are out of reach."""
        concurrency = highest_concurrency(self.point, self.batch_limit, goals, self.window)
        if not concurrency:
            return {"concurrency": 0, "point": self.point(1), "replicas": None, "gpus": None, "met": False}
        point = self.point(concurrency)
        rate = goals["request_rate"]
        per_replica = point["requests_per_s"]
        if rate:
            needed = int(math.ceil(rate / per_replica - _EPSILON)) if per_replica > 0 else MAX_REPLICAS + 1
        else:
            needed = 1
        replicas = fixed_replicas or max(1, needed)
        met = replicas <= MAX_REPLICAS if not fixed_replicas else True
        if rate:
            met = met and replicas * per_replica >= rate - _EPSILON
        return {"concurrency": concurrency, "point": point, "replicas": replicas, "gpus": replicas * self.gpus_per_replica, "met": met}

    def entry(self, assessed):
        point = assessed["point"]
        return {
            "tensor_parallel_size": self.tp,
            "pipeline_parallel_size": self.pp,
            "quantization": self.quantization,
            "replicas": assessed["replicas"],
            "gpus": assessed["gpus"],
            "gpus_per_replica": self.gpus_per_replica,
            "concurrency_per_replica": assessed["concurrency"],
            "ttft_ms": point["ttft_ms"],
            "tpot_ms": point["tpot_ms"],
            "requests_per_s_per_replica": point["requests_per_s"],
        }


def _rank(candidate, assessed):
    point = assessed["point"]
    return (assessed["gpus"], point["tpot_ms"] or 0.0, point["ttft_ms"], candidate.gpus_per_replica, candidate.quantization is not None)


def _select(candidates, goals, fixed_replicas):
    """(chosen (candidate, assessment) or None among the eligible, [(candidate, assessment)] of every one that meets)."""
    meeting = []
    for candidate in candidates:
        assessed = candidate.assess(goals, fixed_replicas)
        if assessed["met"]:
            meeting.append((candidate, assessed))
    meeting.sort(key=lambda item: _rank(*item))
    eligible = [item for item in meeting if item[0].eligible]
    return (eligible[0] if eligible else None), meeting


def _ceil_tenth(value):
    return math.ceil(value * 10.0 - _EPSILON) / 10.0


def _layout_name(candidate):
    return "TP%d x PP%d%s" % (candidate.tp, candidate.pp, " fp8" if candidate.quantization else "")


def _nearest(candidates, goals, fixed_replicas):
    """The feasible targets nearest to ``goals`` over the eligible candidates, or None when none fits memory."""
    pool = [candidate for candidate in candidates if candidate.eligible]
    if not pool:
        return None
    firsts = [(candidate, candidate.point(1)) for candidate in pool]
    best_ttft = min(firsts, key=lambda item: item[1]["ttft_ms"])
    with_tpot = [item for item in firsts if item[1]["tpot_ms"] is not None]
    best_tpot = min(with_tpot, key=lambda item: item[1]["tpot_ms"]) if with_tpot else None
    relaxed = dict(goals)
    if not any(_meets(point, goals) for _candidate, point in firsts):
        # The layout closest to the latency targets at one client: the smallest factor by which a target must grow.
        def stretch(item):
            point = item[1]
            ratios = [1.0]
            if goals["ttft_ms"] is not None:
                ratios.append(point["ttft_ms"] / goals["ttft_ms"])
            if goals["tpot_ms"] is not None and point["tpot_ms"] is not None:
                ratios.append(point["tpot_ms"] / goals["tpot_ms"])
            return (max(ratios), item[0].gpus_per_replica)
        closest = min(firsts, key=stretch)[1]
        if goals["ttft_ms"] is not None and closest["ttft_ms"] > goals["ttft_ms"]:
            relaxed["ttft_ms"] = _ceil_tenth(closest["ttft_ms"])
        if goals["tpot_ms"] is not None and closest["tpot_ms"] is not None and closest["tpot_ms"] > goals["tpot_ms"]:
            relaxed["tpot_ms"] = _ceil_tenth(closest["tpot_ms"])
    if goals["request_rate"]:
        # The rate reachable at the (relaxed) latency targets with the most replicas allowed.
        cap = fixed_replicas or MAX_REPLICAS
        reachable = 0.0
        for candidate in pool:
            concurrency = highest_concurrency(candidate.point, candidate.batch_limit, relaxed, candidate.window)
            if concurrency:
                reachable = max(reachable, candidate.point(concurrency)["requests_per_s"] * cap)
        relaxed["request_rate"] = min(goals["request_rate"], math.floor(reachable * 1000.0) / 1000.0)
    chosen, _meeting = _select(pool, relaxed, fixed_replicas) if (relaxed["request_rate"] or not goals["request_rate"]) else (None, [])
    return {
        "ttft_ms": relaxed["ttft_ms"],
        "tpot_ms": relaxed["tpot_ms"],
        "request_rate": relaxed["request_rate"],
        "best_ttft_ms": best_ttft[1]["ttft_ms"],
        "best_ttft_layout": _layout_name(best_ttft[0]),
        "best_tpot_ms": best_tpot[1]["tpot_ms"] if best_tpot else None,
        "best_tpot_layout": _layout_name(best_tpot[0]) if best_tpot else None,
        "chosen": chosen[0].entry(chosen[1]) if chosen else None,
    }


def _autoscaling(candidate, assessed, input_len):
    concurrency = assessed["concurrency"]
    admitted = int(math.ceil(candidate.result["plan"]["max_num_batched_tokens"] / float(input_len)))
    return {
        "max_replicas": assessed["replicas"],
        "target_waiting": max(1, concurrency - admitted),
        "target_in_flight": concurrency,
    }


def _goal_text(goals):
    parts = []
    for name, key in (("slo_ttft_ms", "ttft_ms"), ("slo_tpot_ms", "tpot_ms"), ("request_rate", "request_rate")):
        if goals.get(key) is not None:
            parts.append("%s=%g" % (name, goals[key]))
    return ", ".join(parts)


def unmet_message(slo, max_nodes, fixed):
    """Why no layout meets the SLO: the targets, the best achievable values and the nearest feasible targets."""
    where = "no layout within max_nodes=%d%s" % (max_nodes, (" with the fixed " + ", ".join(fixed)) if fixed else "")
    text = "SLO not met (%s): %s meets it at input_len=%d, output_len=%d" % (_goal_text(slo), where, slo["input_len"], slo["output_len"])
    nearest = slo["nearest"]
    if nearest is None:
        return text + "; no layout fits memory"
    text += "; best achievable: TTFT %g ms (%s)" % (nearest["best_ttft_ms"], nearest["best_ttft_layout"])
    if nearest["best_tpot_ms"] is not None:
        text += ", TPOT %g ms (%s)" % (nearest["best_tpot_ms"], nearest["best_tpot_layout"])
    text += "; nearest feasible targets: %s" % _goal_text(nearest)
    if slo["request_rate"]:
        text += " (at most %d replicas)" % (slo["replicas_limit"])
    chosen = nearest["chosen"]
    if chosen:
        text += ", on TP%d x PP%d%s x %d replica%s (%d GPUs, %d client%s a replica)" % (
            chosen["tensor_parallel_size"], chosen["pipeline_parallel_size"], " with fp8 weights" if chosen["quantization"] else "",
            chosen["replicas"], "" if chosen["replicas"] == 1 else "s", chosen["gpus"], chosen["concurrency_per_replica"],
            "" if chosen["concurrency_per_replica"] == 1 else "s")
    return text


def plan_for_slo(spec, model_id, hub_id, plan_kwargs, base, goals, input_len, output_len, dtype_fixed=False):
    """Evaluate the candidate layouts against ``goals`` (from targets()).

    plan_kwargs: the keyword arguments of sizing.plan for the task (gpu_spec, dtype, max_nodes, tensor_parallel_size,
    pipeline_parallel_size, replicas, ...); base: sizing.plan's result for them. A replica count above 1 is taken as
    fixed. dtype_fixed: the user named the weight format (FP8 candidates are then advice only).

    Returns {slo: the ``slo`` result, changes: sizing.plan keyword arguments to replan with (empty when the plan stands),
    advice: [str], warnings: [str], met: bool, message: the unmet message or None}.
    """
    gpu_spec = plan_kwargs.get("gpu_spec")
    if not gpu_spec or not gpu_spec.get("memory_bandwidth_bytes_per_s"):
        field = [name for name, key in zip(OPTIONS, ("ttft_ms", "tpot_ms", "request_rate")) if goals[key] is not None][0]
        raise SloError(field, "%s needs speed predictions, which need a catalog GPU (its datasheet bandwidth and TFLOP/s): "
                       "set gpu to a catalog product, not only gpu_memory_gib" % field)
    plan = base["plan"]
    max_nodes = plan_kwargs.get("max_nodes") or sizing.DEFAULT_MAX_NODES
    fixed_tp = plan_kwargs.get("tensor_parallel_size")
    fixed_pp = plan_kwargs.get("pipeline_parallel_size")
    fixed_replicas = plan_kwargs.get("replicas") if (plan_kwargs.get("replicas") or 1) > 1 else None
    dtype = plan["dtype"]
    formats = [(dtype, None, True)]
    if dtype in ("bf16", "fp16") and spec.native_dtype in ("bf16", "fp16") and gpu_spec.get("fp8"):
        formats.append(("fp8", "fp8", not dtype_fixed))

    candidates = []
    # GPUs of the best eligible candidate so far, overall and at the plan's own dtype (which the FP8 advice compares
    # with): a layout of more GPUs a replica cannot beat them, so the search stops past both.
    fewest = {None: None, "any": None}
    for tp, pp in candidate_layouts(spec, plan["gpus_per_node"], max_nodes, fixed_tp, fixed_pp):
        beyond = dict((key, bound is not None and tp * pp > bound) for key, bound in fewest.items())
        if beyond[None] and beyond["any"]:
            break
        for weights, quantization, allowed in formats:
            if beyond["any"] and quantization is not None:
                continue
            kwargs = dict(plan_kwargs, tensor_parallel_size=tp, pipeline_parallel_size=pp, dtype=weights, replicas=1)
            try:
                result = sizing.plan(spec, model_id, hub_id, **kwargs)
            except sizing.SizingError:
                continue
            if not result["fits"]:
                continue
            eligible = allowed and (not fixed_tp or tp == fixed_tp) and (not fixed_pp or pp == fixed_pp)
            try:
                predictor = replica_predictor(spec, gpu_spec, result, input_len, output_len)
            except performance.PerformanceError as exc:
                raise SloError(exc.field, str(exc))
            candidate = _Candidate(result, quantization, eligible, predictor, input_len)
            candidates.append(candidate)
            if eligible:
                assessed = candidate.assess(goals, fixed_replicas)
                for key in ("any", quantization):
                    if assessed["met"] and key in fewest and (fewest[key] is None or assessed["gpus"] < fewest[key]):
                        fewest[key] = assessed["gpus"]

    chosen, meeting = _select(candidates, goals, fixed_replicas)
    alternatives = [candidate.entry(assessed) for candidate, assessed in meeting
                    if chosen is None or candidate is not chosen[0]][:MAX_ALTERNATIVES]
    slo = {
        "ttft_ms": goals["ttft_ms"],
        "tpot_ms": goals["tpot_ms"],
        "request_rate": goals["request_rate"],
        "input_len": input_len,
        "output_len": output_len,
        "met": chosen is not None,
        "chosen": chosen[0].entry(chosen[1]) if chosen else None,
        "alternatives": alternatives,
        "nearest": None,
        "autoscaling": _autoscaling(chosen[0], chosen[1], input_len) if chosen else None,
        "layouts_evaluated": len(candidates),
        "replicas_limit": fixed_replicas or MAX_REPLICAS,
        "reason": None,
    }
    fixed = [("tensor_parallel_size=%d" % fixed_tp) if fixed_tp else None, ("pipeline_parallel_size=%d" % fixed_pp) if fixed_pp else None,
             ("replicas=%d" % fixed_replicas) if fixed_replicas else None]
    fixed = [item for item in fixed if item]
    advice, warnings, changes, message = [], [], {}, None
    if chosen is None:
        slo["nearest"] = _nearest(candidates, goals, fixed_replicas)
        message = unmet_message(slo, max_nodes, fixed)
        slo["reason"] = message
        warnings.append(message)
    else:
        candidate, assessed = chosen
        same = (candidate.tp, candidate.pp, candidate.dtype) == (plan["tensor_parallel_size"], plan["pipeline_parallel_size"], dtype)
        if not same:
            changes.update(tensor_parallel_size=candidate.tp, pipeline_parallel_size=candidate.pp, dtype=candidate.dtype)
        if assessed["replicas"] != plan["replicas"]:
            changes["replicas"] = assessed["replicas"]
        if candidate.quantization:
            plain = [item for item in meeting if item[0].eligible and item[0].quantization is None]
            instead = ("instead of %d in %s" % (plain[0][1]["gpus"], dtype)) if plain else "where no %s layout meets it" % dtype
            advice.append("FP8 weights meet the SLO on %d GPUs (TP%d x PP%d x %d replica%s) %s: the plan quantizes online "
                          "(--quantization=fp8); an FP8 checkpoint loads faster"
                          % (assessed["gpus"], candidate.tp, candidate.pp, assessed["replicas"], "" if assessed["replicas"] == 1 else "s", instead))
    # FP8 layouts the user's dtype rules out, when they would need fewer GPUs.
    ruled_out = [item for item in meeting if not item[0].eligible and item[0].quantization and item[0].dtype != dtype]
    if ruled_out and (chosen is None or ruled_out[0][1]["gpus"] < chosen[1]["gpus"]):
        candidate, assessed = ruled_out[0]
        if not fixed_tp and not fixed_pp:
            advice.append("FP8 weights would meet the SLO on %d GPUs (TP%d x PP%d x %d replica%s)%s: quantize first (an FP8 checkpoint, "
                          "or dtype=fp8)" % (assessed["gpus"], candidate.tp, candidate.pp, assessed["replicas"],
                                             "" if assessed["replicas"] == 1 else "s",
                                             (" instead of %d" % chosen[1]["gpus"]) if chosen else ""))
    return {"slo": slo, "changes": changes, "advice": advice, "warnings": warnings, "met": chosen is not None, "message": message}
