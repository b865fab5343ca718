#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: contributors to gpuinfer.serving
# Apache License 2.0 (see https://www.apache.org/licenses/LICENSE-2.0)

from __future__ import absolute_import, division, print_function

__metaclass__ = type

DOCUMENTATION = r"""
---
module: gpu_sizing
short_description: Plan GPUs, tensor/pipeline parallelism and KV-cache capacity for serving an LLM with vLLM
version_added: "0.1.0"
description:
  - Turns a model (an embedded catalog id or a Hugging Face C(config.json)) and a GPU type into a vLLM serving plan
    the collection's roles read as C(gpuinfer_plan) - tensor and pipeline parallel sizes, nodes, the per-GPU memory
    breakdown, the KV-cache capacity in tokens, the concurrency it allows at C(max_model_len), and the engine flags.
  - Pure computation on the controller, no GPU, torch or network needed; it answers in milliseconds. It changes nothing
    unless O(output_dir) is set, then it writes the plan files there.
  - An action plugin of the same name runs it in-process on the controller (no module is shipped or started); the module
    file itself still works when run directly, like any module, with the collection's module_utils.
  - Parameter counts are exact for the supported architectures (dense, grouped-query and multi-query attention,
    mixture of experts with shared experts and leading dense layers, DeepSeek multi-head latent attention, tied
    embeddings, attention/MLP biases, explicit C(head_dim), Gemma 2's extra norms); they agree with transformers'
    own count of the same config.
  - "B(KV cache per token) = 2 (K and V) x layers x KV heads x head_dim x KV dtype bytes - grouped-query attention counts
    KV heads, not attention heads, which is where the common rule of thumb (2 x layers x hidden x bytes) overstates
    Llama-3-70B eightfold. Multi-head latent attention stores one latent of C(kv_lora_rank + qk_rope_head_dim) per
    layer, not split across tensor-parallel ranks. KV heads replicate on ranks when the tensor parallel size exceeds
    them."
  - "B(Memory model), per GPU, following vLLM's start-up accounting (C(determine_available_memory)) of the release in
    O(vllm_version): usable = total x C(gpu_memory_utilization) (default 0.92); KV cache = usable - this rank's weights -
    the activation peak of the profile run over C(max_num_batched_tokens) tokens (and the sampler's logits on the last
    pipeline stage) - non-torch memory (NCCL and custom all-reduce buffers with TP > 1) - the CUDA-graph estimate (from
    vLLM 0.27; earlier only on the V1 runner). The KV cache is cut into blocks of 16 tokens per group of layers of one
    attention type; a request needs max_model_len of full-attention blocks, or only its window's of sliding-window
    ones. Each pipeline stage holds only its layers' KV cache; a replica holds the tokens of its most constrained stage."
  - "B(Planning rules): when one node meets the targets, the fewest GPUs of one node (tensor parallel only); otherwise
    whole nodes with TP = the largest valid size inside a node and PP = the fewest nodes that meet the targets, never
    more stages than layers. Tensor parallel sizes are those vLLM accepts - they divide the attention heads, and the KV
    heads are divisible by them or divide them. Fixed C(tensor_parallel_size)/C(pipeline_parallel_size) are validated instead of chosen.
    Replicas (data parallel) come on top."
  - "B(SLO planning): with O(slo_ttft_ms), O(slo_tpot_ms) and/or O(request_rate), the layout (TP x PP, and FP8 weights
    where they help) and the replicas are those that meet the latency targets and the request rate with the fewest
    GPUs, by the speed model of RV(performance); RV(slo) shows the choice, the alternatives and the autoscaler targets."
  - Warnings (also under C(plan.warnings)) and C(advice) say what would help, such as FP8 weights on FP8-capable GPUs,
    an FP8 KV cache, a shorter context, or more nodes.
author:
  - gpuinfer.serving contributors (@gpuinfer)
options:
  model:
    description:
      - An embedded catalog id, matched case-insensitively, such as C(meta-llama/Llama-3.1-70B-Instruct) or a short
        alias like C(llama-3.1-70b); or the path of a Hugging Face C(config.json), or of a folder holding one
        (an existing path, or one starting with C(/), C(./) or C(../), or ending in C(.json)).
      - "Catalog: Llama 3.1 8B/70B/405B Instruct (and base), Llama 3.2 3B, Llama 3.3 70B, Mistral 7B v0.3,
        Mixtral 8x7B and 8x22B, Qwen2.5 7B/72B, Qwen3 14B/32B, Qwen3-30B-A3B, Qwen3-235B-A22B, Gemma 2 27B,
        Phi-3 mini 4k, DeepSeek-V3 and DeepSeek-R1."
    type: str
    required: true
  hub_id:
    description:
      - Hugging Face repository id the engine and the model cache download, such as C(Qwen/Qwen3-30B-A3B).
      - Needed to deploy a model given as a C(config.json) path (planning alone does not need it); for a catalog id it
        defaults to that id and may name a mirror of it instead.
    type: str
  revision:
    description:
      - Revision of O(hub_id) to download and serve (a branch, tag or commit sha; pin a sha for reproducible weights).
    type: str
    default: main
  dtype:
    description:
      - Weight format. C(auto) takes the config's own (C(torch_dtype), or C(fp8) for a checkpoint shipping an FP8
        C(quantization_config) such as DeepSeek-V3).
      - C(fp8) quantizes the linear layers to 8 bits (embeddings, lm_head, norms and MoE routers stay 16-bit, as in vLLM).
      - C(int8) is W8A8 and C(int4) AWQ/GPTQ with one fp16 scale and a 4-bit zero point per group of 128 weights;
        both need a checkpoint quantized offline (its C(quantization_config) says which), so they are refused for a
        float checkpoint. A quantized checkpoint is served at its own precision only. C(fp8) on a float checkpoint
        quantizes online (C(--quantization=fp8)), the one method vLLM can apply at load time.
    type: str
    default: auto
    choices: [auto, bf16, bfloat16, fp16, float16, fp32, float32, fp8, int8, int4]
  kv_cache_dtype:
    description:
      - KV-cache storage, as vLLM's C(--kv-cache-dtype). C(auto) uses the activation dtype (2 bytes for bf16/fp16).
    type: str
    default: auto
    choices: [auto, fp8, fp8_e4m3, fp8_e5m2]
  gpu:
    description:
      - GPU product from the embedded catalog (C(A100-40GB), C(A100-40GB-PCIe), C(A100-80GB), C(A100-80GB-PCIe),
        C(H100-80GB), C(H100-80GB-PCIe), C(H100-NVL-94GB), C(H200-141GB), C(H20), C(B200), C(L40S), C(L4), C(A10G)),
        an alias such as C(H100), or a GPU Feature Discovery C(nvidia.com/gpu.product) label such as
        C(NVIDIA-H100-80GB-HBM3) or C(NVIDIA-A100-SXM4-80GB); case-insensitive.
      - One of O(gpu) or O(gpu_memory_gib) is required.
    type: str
  gpu_memory_gib:
    description:
      - Memory of one GPU in GiB as CUDA reports it. Overrides the catalog's figure when O(gpu) is also given, or sizes an
        unlisted GPU (then NVLink and FP8 support are unknown and no advice depends on them).
    type: float
  gpus_per_node:
    description:
      - GPUs in one node (the NVLink domain tensor parallelism stays inside). Defaults to the GPU's typical server
        (8 for SXM parts, 4 for A10G), or 8 without O(gpu).
    type: int
  max_nodes:
    description:
      - Most nodes one replica may span with pipeline parallelism. The planner still takes the fewest.
    type: int
    default: 8
  max_model_len:
    description:
      - Context length to serve; defaults to the model's C(max_position_embeddings), as vLLM does.
    type: int
  min_concurrency:
    description:
      - Sequences of O(max_model_len) tokens that must fit in one replica's KV cache at once. vLLM itself needs 1.
    type: float
    default: 1
  gpu_memory_utilization:
    description:
      - vLLM's fraction of B(total) GPU memory the instance may use (weights, activations and KV cache together).
        Defaults to vLLM's current default, 0.92.
    type: float
  max_num_seqs:
    description:
      - vLLM C(--max-num-seqs). Defaults to vLLM's OpenAI-server default - 1024 on GPUs of 70 GiB or more other than
        the A100, 256 elsewhere.
    type: int
  max_num_batched_tokens:
    description:
      - vLLM C(--max-num-batched-tokens), the size of the profile run that sets the activation peak. Defaults to vLLM's
        OpenAI-server default - 8192 on GPUs of 70 GiB or more other than the A100, 2048 elsewhere.
    type: int
  tensor_parallel_size:
    description:
      - Fix the tensor parallel size instead of choosing it. Checked as vLLM checks it - it must divide the attention
        heads, and the KV heads must be divisible by it or divide it - and it may be no larger than O(gpus_per_node).
    type: int
  pipeline_parallel_size:
    description:
      - Fix the pipeline parallel size instead of choosing it; at most the model's layer count.
    type: int
  replicas:
    description:
      - Data-parallel replicas of the layout (each an independent vLLM instance); multiplies the GPU count only.
    type: int
    default: 1
  served_model_name:
    description:
      - Name the OpenAI API serves the model under; adds C(--served-model-name). Defaults to the model id in the plan.
    type: str
  vllm_version:
    description:
      - The vLLM release whose memory accounting the plan follows, such as C(0.34.0). Defaults to the release the
        C(vllm) role pins; with C(engine=nim), to the release NIM's image runs (0.32.0 in NIM 2.1.6).
        From 0.27 vLLM takes its CUDA-graph estimate off the KV cache before sizing it; 0.26 did
        so only for MoE and quantized models. From 0.33 the profile run's sampler also runs with top-k/top-p and
        penalties; 0.34 uses 64-token blocks and sizes its extensible KV cache from the memory left after warmup and
        CUDA-graph capture, less a margin of max(1 GiB, 0.75 x the activation peak) when that binds before
        C(gpu_memory_utilization) does.
    type: str
  engine:
    description:
      - The engine whose memory accounting the plan follows. C(vllm) and C(nim) use vLLM's (see O(vllm_version)); NIM
        runs vLLM inside its container, so a NIM plan is sized as vLLM sizes it.
      - C(sglang) follows SGLang's own accounting (the release the C(sglang) role pins, 0.5.23) - the KV pool is
        C(mem_fraction_static) x the free memory before the weights load, minus what is resident after loading
        (weights, rotary cache); activations and CUDA graphs live in the remaining 1 - C(mem_fraction_static).
        RV(kv_cache_tokens) is SGLang's C(max_total_num_tokens). Calibrated on real SGLang start-ups on an H100
        (C(tests/fixtures/sglang-boot)) - within 0.1%, never above.
      - With C(sglang), O(gpu_memory_utilization) is SGLang's C(--mem-fraction-static); unset, the plan takes SGLang's
        own default for the GPU, the tensor and pipeline parallel sizes and the chunked prefill size
        (O(max_num_batched_tokens)), and returns it as C(plan.mem_fraction_static) (also C(plan.gpu_memory_utilization)),
        which the C(sglang) role renders. A set value that leaves less than that reserve is kept, with a warning.
    type: str
    default: vllm
    choices: [vllm, sglang, nim]
  fail_on_no_fit:
    description:
      - When no layout within O(max_nodes) holds the model and meets O(min_concurrency) at O(max_model_len), fail with
        the reasons (how far short, and whether more GPUs, FP8 or a shorter context would fit).
      - Set to C(false) to get the best layout anyway with RV(fits=false) and the reasons in the warnings, for reports
        that compare options.
    type: bool
    default: true
  output_dir:
    description:
      - Folder to write the plan files into, as the C(gpuinfer.serving.plan) role does - C(plan.yml) (the result as YAML,
        the document C(plan_from_file) and C(playbooks/validate.yml) read back), C(plan.json) (the same, as JSON with
        sorted keys) and C(plan-report.txt) (the report of the P(gpuinfer.serving.plan_report#filter) filter).
      - The folder is created when missing (mode C(0755)); each file (mode C(0644)) is rewritten only when its content
        differs, and C(changed) says whether anything was. In check mode nothing is written; with C(--diff) the
        before and after of each file that changes are returned.
      - Written where the computation runs - the controller with the action plugin. Relative paths are relative to the
        current directory (where C(ansible-playbook) runs). Nothing is written when the task fails (RV(fits=false) with
        O(fail_on_no_fit=true), or bad input).
      - Needs PyYAML, which ansible-core ships with on the controller.
    type: path
  input_len:
    description:
      - Prompt tokens per request of the load RV(performance) predicts speed for. O(input_len) + O(output_len) may be no
        more than O(max_model_len).
    type: int
    default: 1024
  output_len:
    description:
      - Generated tokens per request of the load RV(performance) predicts speed for.
    type: int
    default: 128
  concurrency:
    description:
      - Client counts of the closed-loop loads RV(performance) predicts (each client sends its next request when its last
        one finishes), positive integers. Defaults to 1, 16, 64 and the plan's C(max_num_seqs); sorted, duplicates dropped.
    type: list
    elements: int
  slo_ttft_ms:
    description:
      - Target p50 time to first token in milliseconds, for requests of O(input_len)/O(output_len), a number greater
        than 0. Setting any of O(slo_ttft_ms), O(slo_tpot_ms) or O(request_rate) turns on SLO planning (RV(slo)); without
        them the plan is what the memory rules choose.
      - "B(SLO planning): every tensor parallel size that is a power of two inside a node (PP 1), and the largest one of a
        node over 2 or more pipeline stages up to O(max_nodes), that fits memory - at the plan's dtype and, on FP8 GPUs for
        a bf16/fp16 checkpoint, with FP8 weights too - is given the highest concurrency per replica whose predicted TTFT
        and TPOT (RV(performance)'s model) meet the targets; its requests/s there sets the replicas O(request_rate)
        needs. The layout and replicas with the fewest GPUs win (then the lowest TPOT), and the plan follows them: its
        tensor and pipeline parallel sizes, replicas and, with O(dtype=auto), FP8 weights quantized online when those
        win (advice says so). O(tensor_parallel_size), O(pipeline_parallel_size), O(replicas) above 1 and a O(dtype)
        other than C(auto) are kept and checked instead (replicas=1, the default, lets the planner choose)."
      - When no layout meets the targets the task fails, naming the targets, the best achievable TTFT and TPOT and the
        nearest feasible targets; with O(fail_on_no_fit=false) it returns the memory plan with C(slo.met=false).
      - Needs a catalog O(gpu) (the speed model reads its datasheet bandwidth and TFLOP/s).
    type: float
  slo_tpot_ms:
    description:
      - Target p50 time per output token (inter-token latency) in milliseconds, a number greater than 0; see
        O(slo_ttft_ms) for SLO planning. Ignored when O(output_len) is 1 (no second token).
    type: float
  request_rate:
    description:
      - Peak requests per second the whole deployment must serve, a number greater than 0. The plan takes
        ceil(O(request_rate) / one replica's requests/s at its SLO-meeting concurrency) replicas; that count is also
        C(slo.autoscaling.max_replicas). Alone (no latency target), each replica runs at its full batch.
    type: float
attributes:
  check_mode:
    support: full
    description: The result is the same in check mode; with O(output_dir), nothing is written but C(changed) says
      whether the files would change.
  diff_mode:
    support: full
    description: With O(output_dir), returns the before and after of the plan files that change (and of the folder when it
      is created or its mode is fixed).
notes:
  - The catalog and memory constants are embedded; nothing is downloaded. A C(config.json) of another architecture
    works when it uses the standard Hugging Face field names of the families above.
  - Sliding-window layers are sized as vLLM's hybrid KV-cache manager sizes them for Mistral, Phi-3 (every layer) and
    Gemma 2 (every other layer), the layouts real vLLM start-ups show; other sliding-window models are counted as full
    attention, with a warning that vLLM may hold more tokens than predicted.
  - The memory terms are calibrated on real vLLM 0.26 start-ups on an H200 (C(tests/fixtures/vllm-boot)); the predicted
    KV-cache tokens are within 0.4% of what vLLM logged in every case, never more than 0.2% above it.
  - Multi-token-prediction layers (DeepSeek-V3's C(num_nextn_predict_layers)) are not loaded by vLLM without
    speculative decoding and are not counted.
seealso:
  - name: vLLM engine arguments
    description: The flags of RV(vllm_args).
    link: https://docs.vllm.ai/en/latest/serving/engine_args.html
"""

EXAMPLES = r"""
- name: Plan Llama 3.1 70B on A100 80GB nodes for 32k context and 8 concurrent sequences
  gpuinfer.serving.gpu_sizing:
    model: meta-llama/Llama-3.1-70B-Instruct
    gpu: A100-80GB
    max_model_len: 32768
    min_concurrency: 8
  register: sizing

- name: Validate a fixed TP=8 layout on the GPU type GPU Feature Discovery reports
  gpuinfer.serving.gpu_sizing:
    model: meta-llama/Llama-3.1-70B-Instruct
    gpu: NVIDIA-A100-SXM4-80GB
    tensor_parallel_size: 8

- name: Llama 3.1 405B on two 8 x H100 nodes (TP8 x PP2), reporting instead of failing if it does not fit
  gpuinfer.serving.gpu_sizing:
    model: llama-3.1-405b
    gpu: H100-80GB
    max_nodes: 2
    fail_on_no_fit: false
  register: sizing_405b

- name: The fewest H100s serving 20 requests/s of Llama 3.1 70B within 1 s TTFT and 30 ms TPOT (p50)
  gpuinfer.serving.gpu_sizing:
    model: llama-3.1-70b
    gpu: H100-80GB
    input_len: 1024
    output_len: 128
    slo_ttft_ms: 1000
    slo_tpot_ms: 30
    request_rate: 20
  register: slo_plan

- name: Size a model outside the catalog from its config.json, in FP8 with an FP8 KV cache, deployable from the Hub
  gpuinfer.serving.gpu_sizing:
    model: /models/my-finetune/config.json
    hub_id: my-org/my-finetune
    revision: 0123456789abcdef0123456789abcdef01234567
    gpu: H200
    dtype: fp8
    kv_cache_dtype: fp8
"""

RETURN = r"""
model:
  description: What the planner read from the config.
  returned: always
  type: dict
  sample: {id: meta-llama/Llama-3.1-70B-Instruct, hf_id: meta-llama/Llama-3.1-70B-Instruct, revision: main,
           architecture: LlamaForCausalLM, num_layers: 80, num_attention_heads: 64, num_kv_heads: 8, max_position_embeddings: 131072, dtype: bf16}
params:
  description: Total parameter count (multi-token-prediction layers excluded).
  returned: always
  type: int
  sample: 70553706496
active_params:
  description: Parameters used per token; equals RV(params) for dense models.
  returned: always
  type: int
  sample: 70553706496
weights_bytes:
  description: Bytes of all weights in the planned dtype, quantization scales included, before any split.
  returned: always
  type: int
  sample: 141107412992
kv_cache_bytes_per_token:
  description: KV-cache bytes of one token for the whole model, before any parallel split.
  returned: always
  type: int
  sample: 327680
plan:
  description:
    - The layout and engine settings. C(nodes), C(gpus_per_replica) and C(stage_layers) describe one replica;
      C(total_gpus) counts all replicas. C(alternatives) lists every layout evaluated, with its KV tokens and
      concurrency. C(warnings) repeats the warnings, which Ansible also shows.
  returned: always
  type: dict
  sample: {tensor_parallel_size: 4, pipeline_parallel_size: 1, nodes: 1, gpus_per_node: 8, gpus_per_replica: 4,
           replicas: 1, total_gpus: 4, gpu: A100-80GB, gpu_labels: [NVIDIA-A100-SXM4-80GB], gpu_memory_gib: 79.15,
           dtype: bf16, kv_cache_dtype: auto, quantization: null, max_model_len: 131072, min_concurrency: 1,
           max_num_seqs: 256, max_num_batched_tokens: 2048, gpu_memory_utilization: 0.92,
           served_model_name: meta-llama/Llama-3.1-70B-Instruct, stage_layers: [80], alternatives: [], warnings: []}
memory_per_gpu:
  description: Bytes on the most constrained GPU - total, usable, weights, activation_peak, non_torch, cuda_graph, kv_cache.
  returned: always
  type: dict
  sample: {total: 84987084800, usable: 78188118016, weights: 35278831616, activation_peak: 1191968768, non_torch: 1717986916,
           cuda_graph: 1073741824, kv_cache: 38925588892}
kv_cache_tokens:
  description: KV-cache capacity of one replica in tokens (whole 16-token blocks), comparable to vLLM's C(GPU KV cache size).
  returned: always
  type: int
  sample: 475152
max_concurrency:
  description: RV(kv_cache_tokens) / O(max_model_len), vLLM's "Maximum concurrency" figure.
  returned: always
  type: float
  sample: 3.63
fits:
  description: Whether the layout holds the model and O(min_concurrency) sequences of O(max_model_len) within O(max_nodes).
  returned: always
  type: bool
  sample: true
vllm_args:
  description: The engine flags the plan implies, as C(--flag=value) strings.
  returned: always
  type: list
  elements: str
  sample: [--tensor-parallel-size=4, --pipeline-parallel-size=1, --max-model-len=131072, --gpu-memory-utilization=0.92,
           --max-num-seqs=256, --max-num-batched-tokens=2048]
advice:
  description: Suggestions - what a smaller layout would hold, FP8 weights or KV cache, a shorter context, replicas.
  returned: always
  type: list
  elements: str
  sample: ["TP2 x PP1 leaves 3.6 GiB per GPU for KV cache: 23584 tokens, 0.18x max_model_len=131072; min_concurrency=1 needs TP4 x PP1
           (475152 tokens, 3.63x)"]
performance:
  description:
    - Predicted serving speed of one replica of the plan on vLLM (C(engine_model); NIM runs vLLM inside and follows it)
      under closed-loop loads of O(concurrency) clients sending O(input_len)/O(output_len) requests, from the GPU's
      datasheet bandwidth and TFLOP/s and the plan's per-GPU weights and KV bytes (module_utils/plan/performance.py documents
      every term; fitted on real vLLM 0.26 runs on one H100, within 15% of their TPOT and throughput).
    - C(points) holds one entry per concurrency - C(ttft_ms) and C(tpot_ms) (median request; C(tpot_ms) is null when
      O(output_len) is 1), C(output_tokens_per_s), C(requests_per_s), and C(bound), the dominant cost of a decode step
      (C(weight reads), C(KV reads), C(compute), C(communication) or C(prefill interference)).
    - C(peak_output_tokens_per_s_per_replica) is the best throughput over the points and a full batch (C(max_num_seqs),
      or what the KV cache holds); C(peak_output_tokens_per_s) multiplies it by the replicas. C(assumptions) lists the
      model's assumptions.
    - Null when the GPU is given only as O(gpu_memory_gib) (no datasheet figures) or when the plan does not fit.
  returned: always
  type: dict
  sample: {engine_model: vllm, points: [{concurrency: 1, input_len: 1024, output_len: 128, ttft_ms: 33.2, tpot_ms: 6.2,
           output_tokens_per_s: 155.9, requests_per_s: 1.218, bound: weight reads}], peak_output_tokens_per_s_per_replica: 5125.1,
           peak_output_tokens_per_s: 5125.1, assumptions: ["NIM runs vLLM inside for these models and follows the same model"]}
slo:
  description:
    - The SLO plan (module_utils/plan/slo.py documents every step). C(ttft_ms), C(tpot_ms), C(request_rate) are the targets
      (null where not set), C(input_len)/C(output_len) the load they are predicted for; C(met) says whether a layout the
      plan may take meets them all.
    - C(chosen) is the layout the plan follows (null when none meets) - C(tensor_parallel_size),
      C(pipeline_parallel_size), C(quantization) (C(fp8) when FP8 weights must be quantized from the bf16/fp16 checkpoint,
      else null), C(replicas), C(gpus) (all replicas), C(gpus_per_replica), C(concurrency_per_replica) (the most clients
      a replica serves within the targets), C(ttft_ms), C(tpot_ms) and C(requests_per_s_per_replica) at that concurrency.
    - C(alternatives) - other layouts that meet the targets, the same shape, fewest GPUs first (at most 6; layouts of
      more GPUs a replica than the chosen total are not evaluated).
    - C(nearest) - when none meets, the feasible targets closest to them (C(ttft_ms), C(tpot_ms), C(request_rate)), the
      best achievable C(best_ttft_ms)/C(best_tpot_ms) at one client and the layouts reaching them, and C(chosen), the plan
      for the nearest targets (C(request_rate) counts at most C(replicas_limit) replicas). C(reason) says the same in words.
    - "C(autoscaling) - when met: C(max_replicas), the replicas O(request_rate) needs; C(target_waiting), the waiting
      requests per replica (vLLM C(vllm:num_requests_waiting)) above which a replica holds more than its SLO-meeting
      concurrency C: the model's cycle sends C prompts of which the first engine step admits
      ceil(max_num_batched_tokens / input_len), so C minus that wait within the SLO and each client more adds one (at
      least 1); C(target_in_flight) = C, running plus waiting requests a replica may hold."
  returned: when O(slo_ttft_ms), O(slo_tpot_ms) or O(request_rate) is set
  type: dict
  sample: {ttft_ms: 1000.0, tpot_ms: 30.0, request_rate: 20.0, input_len: 1024, output_len: 128, met: true,
           chosen: {tensor_parallel_size: 8, pipeline_parallel_size: 1, quantization: fp8, replicas: 1, gpus: 8, gpus_per_replica: 8,
                    concurrency_per_replica: 61, ttft_ms: 892.81, tpot_ms: 13.043, requests_per_s_per_replica: 23.718},
           alternatives: [{tensor_parallel_size: 4, pipeline_parallel_size: 1, quantization: fp8, replicas: 2, gpus: 8, gpus_per_replica: 4,
                           concurrency_per_replica: 45, ttft_ms: 971.15, tpot_ms: 16.816, requests_per_s_per_replica: 14.359}],
           nearest: null, autoscaling: {max_replicas: 1, target_waiting: 53, target_in_flight: 61}, layouts_evaluated: 6,
           replicas_limit: 1000, reason: null}
files:
  description:
    - The plan files in O(output_dir), written or already up to date - C(plan.yml), C(plan.json) and C(plan-report.txt)
      (in check mode, those that would be).
  returned: when O(output_dir) is set
  type: list
  elements: str
  sample: [/srv/plans/llama/plan.yml, /srv/plans/llama/plan.json, /srv/plans/llama/plan-report.txt]
"""

import copy
import functools
import json
import os
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_native, to_text
from ansible.module_utils.common.yaml import HAS_YAML, yaml_dump
from ansible_collections.gpuinfer.serving.plugins.module_utils import inputs
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan import engine_facts, gpu_catalog, model_catalog, performance, sizing, slo
from ansible_collections.gpuinfer.serving.plugins.module_utils.plan.plan_report import render_report

# The options, shared by the module (main()) and the action plugin of the same name (plugins/action/gpu_sizing.py),
# which runs run() in-process on the controller.
ARGUMENT_SPEC = dict(
    model=dict(type="str", required=True),
    hub_id=dict(type="str"),
    revision=dict(type="str", default="main"),
    dtype=dict(type="str", default="auto", choices=["auto", "bf16", "bfloat16", "fp16", "float16", "fp32", "float32", "fp8", "int8", "int4"]),
    kv_cache_dtype=dict(type="str", default="auto", choices=list(sizing.KV_CACHE_DTYPES)),
    gpu=dict(type="str"),
    gpu_memory_gib=dict(type="float"),
    gpus_per_node=dict(type="int"),
    max_nodes=dict(type="int", default=8),
    max_model_len=dict(type="int"),
    min_concurrency=dict(type="float", default=1),
    gpu_memory_utilization=dict(type="float"),
    max_num_seqs=dict(type="int"),
    max_num_batched_tokens=dict(type="int", no_log=False),
    tensor_parallel_size=dict(type="int"),
    pipeline_parallel_size=dict(type="int"),
    replicas=dict(type="int", default=1),
    served_model_name=dict(type="str"),
    vllm_version=dict(type="str"),
    engine=dict(type="str", default="vllm", choices=list(engine_facts.NAMES)),
    fail_on_no_fit=dict(type="bool", default=True),
    output_dir=dict(type="path"),
    input_len=dict(type="int", default=1024),
    output_len=dict(type="int", default=128),
    concurrency=dict(type="list", elements="int"),
    slo_ttft_ms=dict(type="float"),
    slo_tpot_ms=dict(type="float"),
    request_rate=dict(type="float"),
)
REQUIRED_ONE_OF = [("gpu", "gpu_memory_gib")]

PLAN_FILES = ("plan.yml", "plan.json", "plan-report.txt")
DIR_MODE = 0o755
FILE_MODE = 0o644


class GpuSizingFailure(Exception):
    """The task fails: ``msg``, the other keys of the failed result, and the warnings to show with it."""

    def __init__(self, msg, result=None, warnings=None):
        super(GpuSizingFailure, self).__init__(msg)
        self.msg = msg
        self.result = dict(result or {})
        self.warnings = list(warnings or [])


def resolve_model(name, hub_id=None):
    """(reported id, hub id or None, ModelSpec) for a catalog id or a config.json path.

    A config.json path does not say which repository it came from (its _name_or_path is often a local
    folder), so its hub id is only what the user gives.
    """
    looks_like_path = os.path.exists(name) or name.endswith(".json") or name.startswith(("/", "./", "../"))
    if looks_like_path:
        config = sizing.load_config_path(name)
        return name, hub_id or None, sizing.ModelSpec(config, source=name)
    try:
        hf_id, config = model_catalog.lookup(name)
    except model_catalog.UnknownModelError as exc:
        raise sizing.SizingError("model", str(exc))
    return hf_id, hub_id or hf_id, sizing.ModelSpec(config, source="catalog:%s" % hf_id)


def size(params):
    """The gpu_sizing result for the module's parameters (raises sizing.SizingError on bad input)."""
    try:
        goals = slo.targets(params.get("slo_ttft_ms"), params.get("slo_tpot_ms"), params.get("request_rate"))
    except slo.SloError as exc:
        raise sizing.SizingError(exc.field, str(exc))
    model_id, hub_id, spec = resolve_model(params["model"], params.get("hub_id"))
    gpu_name, gpu_spec, unlisted = None, None, None
    if params.get("gpu"):
        try:
            gpu_name, gpu_spec = gpu_catalog.lookup(params["gpu"])
        except gpu_catalog.UnknownGpuError as exc:
            if not params.get("gpu_memory_gib"):
                raise sizing.SizingError("gpu", "%s; or give gpu_memory_gib to size a GPU the catalog does not list" % exc)
            # As documented: gpu_memory_gib sizes a GPU the catalog does not list, under the name given.
            gpu_name, unlisted = str(params["gpu"]), str(exc)
    plan_kwargs = dict(
        gpu_name=gpu_name,
        gpu_spec=gpu_spec,
        gpu_memory_gib=params.get("gpu_memory_gib"),
        dtype=params.get("dtype"),
        kv_cache_dtype=params.get("kv_cache_dtype"),
        gpus_per_node=params.get("gpus_per_node"),
        max_nodes=params.get("max_nodes"),
        max_model_len=params.get("max_model_len"),
        min_concurrency=params.get("min_concurrency"),
        gpu_memory_utilization=params.get("gpu_memory_utilization"),
        max_num_seqs=params.get("max_num_seqs"),
        max_num_batched_tokens=params.get("max_num_batched_tokens"),
        tensor_parallel_size=params.get("tensor_parallel_size"),
        pipeline_parallel_size=params.get("pipeline_parallel_size"),
        replicas=params.get("replicas"),
        served_model_name=params.get("served_model_name"),
        revision=params.get("revision"),
        vllm_version=params.get("vllm_version"),
        engine=params.get("engine"),
    )
    result = sizing.plan(spec, model_id, hub_id, **plan_kwargs)
    result["performance"] = predict_performance(spec, gpu_spec, result, params)
    if goals:
        result = plan_to_slo(spec, model_id, hub_id, plan_kwargs, result, goals, params)
    if unlisted:
        result["plan"]["warnings"].append(
            "%s is not in the GPU catalog: sized as an unlisted GPU of %g GiB (gpu_memory_gib); its NVLink, FP8 "
            "support, bandwidth and GPU Feature Discovery label are unknown, so no advice or speed prediction depends "
            "on them." % (gpu_name, params["gpu_memory_gib"]))
    return result


def plan_to_slo(spec, model_id, hub_id, plan_kwargs, result, goals, params):
    """The result replanned on the layout and replicas that meet the SLO with the fewest GPUs (module_utils/plan/slo.py),
    with ``slo`` added; the plan stands (slo.met=false, and a warning) when none meets it."""
    try:
        found = slo.plan_for_slo(spec, model_id, hub_id, plan_kwargs, result, goals, params.get("input_len", 1024),
                                 params.get("output_len", 128), dtype_fixed=str(params.get("dtype") or "auto") != "auto")
    except slo.SloError as exc:
        raise sizing.SizingError(exc.field, str(exc))
    if found["changes"]:
        result = sizing.plan(spec, model_id, hub_id, **dict(plan_kwargs, **found["changes"]))
        result["performance"] = predict_performance(spec, plan_kwargs["gpu_spec"], result, params)
    result["warnings"].extend(found["warnings"])
    if result["plan"]["warnings"] is not result["warnings"]:
        result["plan"]["warnings"].extend(found["warnings"])
    result["advice"].extend(found["advice"])
    result["slo"] = found["slo"]
    return result


PERFORMANCE_ASSUMPTIONS = [
    "closed loop: concurrency clients send identical requests together and each sends its next when the last ends "
    "(as vllm bench serve --max-concurrency); p50 of a cycle; desynchronised arrivals give higher TPOT, lower TTFT",
    "vLLM 0.26 with chunked prefill, async scheduling and CUDA graphs; no prefix-cache hits, no speculative decoding",
    "efficiencies fitted on one H100 80GB (bf16, TP1): bandwidth %.2f, compute %.2f of the datasheet; TP all-reduce "
    "and PP hand-off costs are not calibrated" % (performance.BANDWIDTH_EFFICIENCY, performance.COMPUTE_EFFICIENCY),
    "MoE decode reads the experts a batch touches, E x (1 - (1 - k/E)^batch) per layer; routing assumed uniform",
    "NIM runs vLLM inside for these models and follows the same model",
]


def predict_performance(spec, gpu_spec, result, params):
    """result["performance"]: predicted TTFT/TPOT/throughput of the plan (None without a catalog GPU or a fit)."""
    input_len, output_len = (
        inputs.whole_number(params.get(name, default), name="%s (tokens per request)" % name,
                            error=functools.partial(sizing.SizingError, name))
        for name, default in (("input_len", 1024), ("output_len", 128)))
    plan = result["plan"]
    try:
        levels = performance.normalize_concurrency(params.get("concurrency"), plan["max_num_seqs"])
    except performance.PerformanceError as exc:
        raise sizing.SizingError(exc.field, str(exc))
    if input_len + output_len > plan["max_model_len"]:
        raise sizing.SizingError("input_len", "input_len=%d + output_len=%d exceeds max_model_len=%d; allowed: requests of at most "
                                 "max_model_len tokens (vLLM refuses longer ones)" % (input_len, output_len, plan["max_model_len"]))
    if not gpu_spec or not gpu_spec.get("memory_bandwidth_bytes_per_s") or not result["fits"]:
        return None
    tp, pp = plan["tensor_parallel_size"], plan["pipeline_parallel_size"]
    dtype = plan["dtype"]
    stage_weights, start = [], 0
    for stage, count in enumerate(plan["stage_layers"]):
        stage_weights.append(sizing.rank_weight_bytes(spec, dtype, tp, list(range(start, start + count)), stage == 0, stage == pp - 1, pp))
        start += count
    kv_per_token = spec.kv_bytes_per_token(sizing.kv_dtype_bytes(spec, dtype, plan["kv_cache_dtype"]), tp)
    try:
        speed = performance.predict(
            performance.model_shape(spec), gpu_spec, tp, pp, stage_weights, plan["stage_layers"], kv_per_token,
            plan["max_num_seqs"], plan["max_num_batched_tokens"], dtype, input_len, output_len, levels,
            kv_cache_tokens=result["kv_cache_tokens"], quantization=plan["quantization"])
    except performance.PerformanceError as exc:
        raise sizing.SizingError(exc.field, str(exc))
    assumptions = list(PERFORMANCE_ASSUMPTIONS)
    if params.get("engine") == "sglang":
        assumptions.append("engine=sglang: predicted with vLLM's step model; SGLang's scheduler is not modelled separately")
    return {
        "engine_model": performance.ENGINE_MODEL,
        "points": speed["points"],
        "peak_output_tokens_per_s_per_replica": speed["peak_output_tokens_per_s"],
        "peak_output_tokens_per_s": round(speed["peak_output_tokens_per_s"] * plan["replicas"], 1),
        "assumptions": assumptions,
    }


def plan_document(result, warnings):
    """The plan as the roles read it (gpuinfer_plan, plan.yml): the result as JSON data, then its warnings, if any.

    This is what registering the module's result and dropping changed/failed/invocation gave: Ansible appends a
    module's warnings to its result as a top-level ``warnings`` list.
    """
    document = json.loads(json.dumps(result))
    if warnings:
        document["warnings"] = [to_text(warning) for warning in warnings]
    return document


def render_plan_files(document):
    """{file name: text} of plan.yml, plan.json and plan-report.txt, as the plan role's filters rendered them.

    plan.yml: ``to_nice_yaml(indent=2, sort_keys=false)``; plan.json: ``to_nice_json`` and a newline;
    plan-report.txt: the lines of the ``plan_report`` filter (module_utils.plan.plan_report.render_report) and a newline.
    """
    if not HAS_YAML:
        raise GpuSizingFailure("writing plan.yml needs PyYAML (python3-yaml) where gpu_sizing runs (field: output_dir)", dict(field="output_dir"))
    return {
        "plan.yml": yaml_dump(document, indent=2, allow_unicode=True, default_flow_style=False, sort_keys=False),
        "plan.json": json.dumps(document, indent=4, sort_keys=True, separators=(",", ": ")) + "\n",
        "plan-report.txt": "\n".join(render_report(document)) + "\n",
    }


def _mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def _read(path):
    """The text of ``path``, or None when it does not exist."""
    if not os.path.lexists(path):
        return None
    with open(path, "rb") as handle:
        return to_text(handle.read(), errors="surrogate_or_strict")


def _write_atomically(path, text):
    folder, name = os.path.split(path)
    handle, temp = tempfile.mkstemp(dir=folder, prefix=".%s." % name)
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(to_bytes(text, errors="surrogate_or_strict"))
        os.chmod(temp, FILE_MODE)
        os.rename(temp, path)
    except BaseException:
        if os.path.exists(temp):
            os.unlink(temp)
        raise


def write_plan_files(output_dir, contents, check_mode=False, diff=False):
    """Create ``output_dir`` if missing and write each file whose content or mode differs.

    Returns (changed, [paths], [diffs]); nothing is written in check mode.
    """
    output_dir = os.path.abspath(output_dir)
    changed = False
    diffs = []
    if os.path.lexists(output_dir) and not os.path.isdir(output_dir):
        raise GpuSizingFailure("output_dir %s exists and is not a folder (field: output_dir)" % output_dir, dict(field="output_dir"))
    # Every missing folder on the way, like ansible.builtin.file state=directory with mode 0755.
    missing = []
    walk = output_dir
    while not os.path.isdir(walk):
        missing.append(walk)
        parent = os.path.dirname(walk)
        if parent == walk:
            break
        walk = parent
    for folder in reversed(missing):
        changed = True
        if diff:
            diffs.append(dict(before=dict(path=folder, state="absent"), after=dict(path=folder, state="directory")))
        if not check_mode:
            os.mkdir(folder, DIR_MODE)
            os.chmod(folder, DIR_MODE)
    if not missing and _mode(output_dir) != DIR_MODE:
        changed = True
        if diff:
            diffs.append(dict(before=dict(path=output_dir, mode="0%03o" % _mode(output_dir)), after=dict(path=output_dir, mode="0%03o" % DIR_MODE)))
        if not check_mode:
            os.chmod(output_dir, DIR_MODE)

    paths = []
    for name in PLAN_FILES:
        path = os.path.join(output_dir, name)
        paths.append(path)
        after = contents[name]
        before = None if missing else _read(path)
        if before == after:
            if _mode(path) != FILE_MODE:
                changed = True
                if diff:
                    diffs.append(dict(before=dict(path=path, mode="0%03o" % _mode(path)), after=dict(path=path, mode="0%03o" % FILE_MODE)))
                if not check_mode:
                    os.chmod(path, FILE_MODE)
            continue
        changed = True
        if diff:
            entry = dict(before=before or "", after=after, after_header=path)
            if before is not None:
                entry["before_header"] = path
            diffs.append(entry)
        if not check_mode:
            _write_atomically(path, after)
    return changed, paths, diffs


def run(params, check_mode=False, diff=False):
    """The task's result for validated parameters, as the module returns it.

    ``changed`` first, then the sizing result (and ``files``, ``diff`` with output_dir), then ``warnings`` (a list of
    str) when there are any; the caller shows them. Raises GpuSizingFailure when the task fails.
    """
    try:
        result = size(params)
    except sizing.SizingError as exc:
        raise GpuSizingFailure("%s (field: %s)" % (exc, exc.field), dict(field=exc.field))

    # ansible-core shows module warnings itself and deprecates a returned 'warnings' key; plan.warnings keeps them in the result.
    warnings = result.pop("warnings")
    if not result["fits"] and params.get("fail_on_no_fit", True):
        failed = dict(changed=False)
        failed.update(result)
        raise GpuSizingFailure("no plan fits: %s. Set fail_on_no_fit=false to get the best layout with fits=false." % "; ".join(warnings),
                               failed, warnings)
    if result.get("slo") and not result["slo"]["met"] and params.get("fail_on_no_fit", True):
        failed = dict(changed=False)
        failed.update(result)
        raise GpuSizingFailure("%s. Set fail_on_no_fit=false to get the plan with slo.met=false." % result["slo"]["reason"],
                               failed, warnings)
    answer = dict(changed=False)
    answer.update(result)
    if params.get("output_dir"):
        contents = render_plan_files(plan_document(result, warnings))
        try:
            changed, paths, diffs = write_plan_files(params["output_dir"], contents, check_mode=check_mode, diff=diff)
        except (IOError, OSError) as exc:
            raise GpuSizingFailure("cannot write the plan files into %s: %s (field: output_dir)" % (params["output_dir"], to_native(exc)),
                                   dict(field="output_dir"), warnings)
        answer["changed"] = changed
        answer["files"] = paths
        if diff and diffs:
            answer["diff"] = diffs
    if warnings:
        answer["warnings"] = warnings
    return answer


def main():
    module = AnsibleModule(
        argument_spec=copy.deepcopy(ARGUMENT_SPEC),
        required_one_of=REQUIRED_ONE_OF,
        supports_check_mode=True,
    )
    try:
        result = run(module.params, check_mode=module.check_mode, diff=module._diff)
    except GpuSizingFailure as failure:
        for warning in failure.warnings:
            module.warn(warning)
        module.fail_json(msg=failure.msg, **failure.result)
    for warning in result.pop("warnings", []):
        module.warn(warning)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
