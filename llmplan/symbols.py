"""The symbol table: every quantity llmplan reasons about, declared once.

Each entry is a sympy symbol with a meaning and a unit. Formula functions in
:mod:`llmplan.formulas` build expressions from these symbols only; a plan binds
them to numbers (:func:`llmplan.estimate.bind`). The docs' formulas page and
``llmplan explain`` print the same table.

Symbol names follow the papers where one exists (Narayanan et al. 2021 and
Korthikanti et al. 2022: *s, b, h, a, L, V, t, p*; the scaling-book's *D* for
tokens).
"""

from __future__ import annotations

import attrs
import sympy

__all__ = ["Quantity", "TABLE", "declare", "lookup"]


@attrs.frozen
class Quantity:
    """One named quantity: its sympy symbol, meaning and unit."""

    symbol: sympy.Symbol
    description: str
    unit: str

    @property
    def name(self) -> str:
        return self.symbol.name


TABLE: dict[str, Quantity] = {}


def declare(name: str, description: str, unit: str = "1", *, integer: bool = True, zero: bool = False) -> sympy.Symbol:
    """Declare a positive (``zero=True``: non-negative) symbol; declaring the same name twice is an error."""
    if name in TABLE:
        raise ValueError(f"symbol {name!r} declared twice")
    sign = {"nonnegative": True} if zero else {"positive": True}
    sym = sympy.Symbol(name, integer=integer or None, **sign)
    TABLE[name] = Quantity(sym, description, unit)
    return sym


def lookup(symbol: sympy.Symbol) -> Quantity:
    """The table entry of a symbol."""
    return TABLE[symbol.name]


# --- model shape --------------------------------------------------------------------------
L = declare("L", "transformer layers", "layers")
h = declare("h", "hidden size (model width)", "elements")
a = declare("a", "attention (query) heads", "heads")
a_kv = declare("a_kv", "key/value heads (GQA; = a for MHA, 1 for MQA)", "heads")
d = declare("d", "width of one attention head", "elements")
f = declare("f", "MLP inner width of a dense layer", "elements")
V = declare("V", "vocabulary size", "tokens")
P_max = declare("P_max", "rows of a learned position table (max positions)", "positions")
L_moe = declare("L_moe", "MoE layers", "layers")
L_dense = declare("L_dense", "dense-MLP layers", "layers")
E = declare("E", "routed experts per MoE layer", "experts")
k = declare("k", "routed experts per token (top-k)", "experts")
E_s = declare("E_s", "shared experts per MoE layer", "experts")
f_e = declare("f_e", "inner width of one routed expert", "elements")
f_s = declare("f_s", "inner width of one shared expert", "elements")
r_q = declare("r_q", "MLA query latent rank (q_lora_rank)", "elements")
r_kv = declare("r_kv", "MLA key/value latent rank (kv_lora_rank)", "elements")
d_nope = declare("d_nope", "MLA per-head query/key width without RoPE", "elements")
d_rope = declare("d_rope", "MLA per-head decoupled RoPE width", "elements")
d_v = declare("d_v", "MLA per-head value width", "elements")
L_mtp = declare("L_mtp", "multi-token-prediction modules (DeepSeek-V3)", "modules")
W_win = declare("W_win", "sliding-window span: keys a query of a sliding-window layer attends to", "tokens")
L_win = declare("L_win", "layers with sliding-window attention", "layers", zero=True)

# --- data and batch -----------------------------------------------------------------------
s = declare("s", "sequence length", "tokens")
b = declare("b", "micro-batch size", "sequences")
B = declare("B", "global batch size", "sequences")
D = declare("D", "training tokens", "tokens")

# --- parallel layout ----------------------------------------------------------------------
N = declare("N", "GPUs in the cluster", "GPUs")
t = declare("t", "tensor-parallel size", "GPUs")
p = declare("p", "pipeline-parallel stages", "stages")
n_dp = declare("n_dp", "data-parallel size", "GPUs")
n_sh = declare("n_sh", "ZeRO / FSDP shard group: the data-parallel ranks a model state is sharded over (n_dp unless dp_shard)", "GPUs")
c = declare("c", "context-parallel size", "GPUs")
e = declare("e", "expert-parallel size", "GPUs")
t_e = declare("t_e", "expert tensor-parallel size", "GPUs")
v = declare("v", "interleaved virtual pipeline chunks per GPU", "chunks")
m = declare("m", "micro-batches per step per pipeline (gradient accumulation)", "micro-batches")
L_s = declare("L_s", "layers on the pipeline stage of the reported (most loaded) GPU", "layers")
L_max = declare("L_max", "layers on the fullest pipeline stage", "layers")
L_last = declare("L_last", "layers on the last pipeline stage (the one with the LM head)", "layers")
n_rc = declare("n_rc", "[parallelism] recompute_layers: the layers full recomputation recomputes per pipeline-stage model chunk (block method), or per checkpointed group (uniform)", "layers")
i_pp = declare("i_pp", "pipeline rank of the reported GPU (0 = first stage)", "rank", zero=True)
n_node = declare("n_node", "GPUs per node", "GPUs")

# --- precision (bytes per element) --------------------------------------------------------
q_w = declare("q_w", "bytes per weight", "B", integer=False)
q_g = declare("q_g", "bytes per gradient element", "B", integer=False)
q_m = declare("q_m", "bytes per fp32 master weight (0 when none)", "B", integer=False)
q_o = declare("q_o", "optimizer-state bytes per trainable parameter", "B", integer=False)
q_a = declare("q_a", "bytes per activation element", "B", integer=False)
q_kv = declare("q_kv", "bytes per KV-cache element", "B", integer=False)
q_lin = declare("q_lin", "bytes per cached Linear-input element (precision.linear_inputs)", "B", integer=False)
q_act = declare("q_act", "bytes per cached activation-function-input element (precision.activation_func_inputs)", "B", integer=False)
# Bytes symbols are not integers: 4-bit weights are 0.5 B.

# --- trainable fraction (fine-tuning) -----------------------------------------------------
N_tr = declare("N_tr", "trainable parameters (adapters, or all for full training)", "params")
r = declare("r", "LoRA rank", "elements")
q_base = declare("q_base", "bytes per frozen base weight, quantisation constants included", "B", integer=False)

# --- hardware -----------------------------------------------------------------------------
F_peak = declare("F_peak", "dense peak of the compute dtype, per GPU", "FLOP/s", integer=False)
F_peak8 = declare("F_peak8", "dense FP8 peak per GPU", "FLOP/s", integer=False)
F_peak16 = declare("F_peak16", "dense BF16/FP16 peak per GPU (attention core under FP8 training)", "FLOP/s", integer=False)
W_hbm = declare("W_hbm", "device-memory bandwidth per GPU", "B/s", integer=False)
n_sm = declare("n_sm", "streaming multiprocessors per GPU (AMD: compute units)", "SMs")
M_cap = declare("M_cap", "usable device memory per GPU", "B")
W_nv = declare("W_nv", "intra-node link bandwidth per GPU, per direction", "B/s", integer=False)
W_net = declare("W_net", "network bandwidth per GPU, per direction (node fabric ÷ GPUs per node)", "B/s", integer=False)
alpha_nv = declare("alpha_nv", "latency of one intra-node message", "s", integer=False)
alpha_net = declare("alpha_net", "latency of one inter-node message", "s", integer=False)
W_tp = declare("W_tp", "bandwidth per GPU, per direction, of the tensor-parallel group's slowest link", "B/s", integer=False)
W_dp = declare("W_dp", "bandwidth per GPU, per direction, of the data-parallel (shard) group's slowest link", "B/s", integer=False)
W_rep = declare("W_rep", "bandwidth per GPU, per direction, of the replica group of hybrid sharding (dp_shard)", "B/s", integer=False)
W_pp = declare("W_pp", "bandwidth between consecutive pipeline stages", "B/s", integer=False)
W_ep = declare("W_ep", "bandwidth per GPU, per direction, of the expert-parallel group's slowest link", "B/s", integer=False)
W_cp = declare("W_cp", "bandwidth per GPU, per direction, of the context-parallel group's slowest link", "B/s", integer=False)
alpha_tp = declare("alpha_tp", "per-message latency in the tensor-parallel group", "s", integer=False)
alpha_dp = declare("alpha_dp", "per-message latency in the data-parallel (shard) group", "s", integer=False)
alpha_rep = declare("alpha_rep", "per-message latency in the replica group of hybrid sharding (dp_shard)", "s", integer=False)
alpha_pp = declare("alpha_pp", "per-message latency between pipeline stages", "s", integer=False)
alpha_ep = declare("alpha_ep", "per-message latency in the expert-parallel group", "s", integer=False)
alpha_cp = declare("alpha_cp", "per-message latency in the context-parallel group", "s", integer=False)
P_tdp = declare("P_tdp", "board power per GPU", "W", integer=False)

# --- efficiency ---------------------------------------------------------------------------
eta = declare("eta", "achieved fraction of dense peak on model FLOPs (MFU basis)", "1", integer=False)
eta_gemm = declare("eta_gemm", "achieved fraction of peak in matrix multiplies", "1", integer=False)
eta_gemm16 = declare("eta_gemm16", "achieved fraction of the BF16/FP16 peak in the matrix multiplies an FP8 recipe keeps in BF16 (output head, MoE router)", "1", integer=False)
eta_attn = declare("eta_attn", "achieved fraction of peak in the fused attention kernel at long sequences, on the FLOPs it executes (causal: the unmasked half); BF16 peak under FP8 training", "1", integer=False)
s_attn = declare("s_attn", "sequence length per kernel call at which the fused attention kernel reaches half its long-sequence rate (0: a flat rate)", "tokens", integer=False, zero=True)
goodput = declare("goodput", "fraction of wall-clock time spent on productive steps (failures, restarts and checkpoint stalls excluded)", "1", integer=False)
kappa = declare("kappa", "device-memory passes over each stored activation byte by elementwise kernels per step", "1", integer=False)
M_over = declare("M_over", "framework overhead: CUDA context, allocator, buffers", "B", integer=False)

# --- money and energy ---------------------------------------------------------------------
c_hour = declare("c_hour", "cloud price per GPU-hour", "currency/h", integer=False)
c_gpu = declare("c_gpu", "purchase price per GPU", "currency", integer=False)
Y = declare("Y", "amortisation period", "years", integer=False)
c_kwh = declare("c_kwh", "electricity price", "currency/kWh", integer=False)
PUE = declare("PUE", "power usage effectiveness (facility ÷ IT power)", "1", integer=False)
H_month = declare("H_month", "hours the GPUs run per month", "h", integer=False)
T_run = declare("T_run", "wall-clock time of the run", "s", integer=False)

# --- serving ----------------------------------------------------------------------------
# Symbols of method.kind = "inference" (llmplan.formulas.serving, docs/serving.md).
s_p = declare("s_p", "prompt tokens per request (method.seq_len)", "tokens")
G_q = declare("G_q", "weights per quantisation group (one scale, and a zero point, per group)", "weights")
q_wx = declare("q_wx", "bytes per weight kept unquantised (embedding, LM head, norms, router, biases)", "B", integer=False)
eta_mem = declare("eta_mem", "achieved fraction of peak memory bandwidth in decode (MBU)", "1", integer=False)


def _declare_nonnegative(name: str, description: str, unit: str, *, integer: bool) -> sympy.Symbol:
    """Like :func:`declare`, for quantities that may be 0 (sympy must not assume them positive)."""
    if name in TABLE:
        raise ValueError(f"symbol {name!r} declared twice")
    sym = sympy.Symbol(name, nonnegative=True, integer=integer or None)
    TABLE[name] = Quantity(sym, description, unit)
    return sym


n_out = _declare_nonnegative("n_out", "generated tokens per request (method.new_tokens)", "tokens", integer=True)
q_sc = _declare_nonnegative("q_sc", "bytes of one quantisation group's scale (0: no groups)", "B", integer=False)
q_zp = _declare_nonnegative("q_zp", "bytes of one quantisation group's zero point (0: symmetric)", "B", integer=False)
R_req = _declare_nonnegative("R_req", "target load, requests per second (method.requests_per_second; 0: none)", "1/s", integer=False)

# --- DualPipe overlap and group-limited expert routing ------------------------------------
# DeepSeek-V3 report (arXiv 2412.19437) §3.2.1 (SMs for communication), §3.2.2 and §2.1.2
# (node-limited routing: a token's experts lie in at most topk_group of n_group groups).
n_csm = _declare_nonnegative("n_csm", "SMs per GPU running communication kernels (DualPipe overlap; 0: none or SMs unknown)", "SMs", integer=True)
# NCCL: one CTA per channel, each on an SM of its own (NVIDIA/nccl#689, #1656), two channels per
# NVLink link to saturate it (NVIDIA/nccl#1703), at most MAXCHANNELS = 32 (src/include/device.h);
# a ring with one member per node runs over the network: two channels per NIC (NVIDIA/nccl#438)
n_ccl = _declare_nonnegative("n_ccl", "SMs the data-parallel (shard-group) collectives take from the compute they overlap (NCCL channels; 0: unknown)", "SMs", integer=True)
n_ccr = _declare_nonnegative("n_ccr", "SMs hybrid sharding's replica all-reduce takes from the compute it overlaps (NCCL channels; 0: none or unknown)", "SMs", integer=True)
n_ccp = _declare_nonnegative("n_ccp", "SMs the context-parallel K/V exchange takes from the compute it overlaps (NCCL channels; 0: none or unknown)", "SMs", integer=True)
G_r = declare("G_r", "expert routing groups per MoE layer (n_group; 1: no group limit)", "groups")
k_G = declare("k_G", "routing groups a token's experts may come from (topk_group)", "groups")
n_epn = declare("n_epn", "nodes the expert-parallel group spans", "nodes")
n_epl = declare("n_epl", "expert-parallel GPUs of one group per node", "GPUs")
W_epl = declare("W_epl", "bandwidth per GPU, per direction, between the expert-parallel GPUs of one node", "B/s", integer=False)
alpha_epl = declare("alpha_epl", "per-message latency between the expert-parallel GPUs of one node", "s", integer=False)
