"""Hardware: GPUs, links and the cluster they form.

Numbers are stored in base units — bytes, bytes/s, FLOP/s, watts — and may be
written in TOML as quantity strings (``"80 GiB"``, ``"3350 GB/s"``,
``"989.4 TFLOP/s"``, ``"700 W"``; see :mod:`llmplan.units`). Link bandwidths
are **per direction** (NVLink 4 = 450 GB/s each way; vendors quote both
directions added).
"""

from __future__ import annotations

from typing import Literal

import attrs

from .errors import Problem
from .model import _Checked, _pos_number

__all__ = ["GPU", "Link", "DTYPES_COMPUTE"]

DTYPES_COMPUTE = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "fp4", "int8")


@attrs.frozen(kw_only=True)
class GPU(_Checked):
    """One accelerator model.

    Attributes:
        id: stable lowercase catalog id (``"h100-sxm"``).
        name: vendor name.
        memory: usable device memory in bytes (``memory.capacity`` in reports;
            an "80 GB" A100/H100 is 80 GiB = 81,920 MiB).
        memory_bandwidth: HBM/GDDR bandwidth in bytes/s.
        peak: dense (no 2:4 sparsity) tensor peak in FLOP/s per dtype
            (keys from ``fp64, fp32, tf32, bf16, fp16, fp8, fp4, int8``).
        nvlink_domain: GPUs in one NVLink/NVSwitch (or xGMI) domain in the
            standard platform (1 = no NVLink).
        gpus_per_node: GPUs in the standard server.
        intra_node: default link id between GPUs of one node.
        inter_node: default link id of the node's network fabric.
        nics_per_node: network ports per node (default one per GPU).
        tdp: board power in watts.
        mamf: measured *maximum achievable matmul* rate in FLOP/s per dtype (the best
            large-GEMM throughput a benchmark finds, e.g. 794.5 TFLOP/s for an H100 SXM in
            BF16 against the 989.4 peak); it sets the default GEMM efficiency
            (:func:`llmplan.plan.default_gemm_efficiency`). Optional.
        sms: streaming multiprocessors (AMD: compute units) — the parallel units a GEMM's
            output tiles are spread over; ``None`` turns off the wave-quantisation term
            of the GEMM-shape efficiency model.
        nvlinks: NVLink links per GPU (A100 12, H100 18, H800 8). NCCL runs two CTAs per
            link, each on an SM of its own, so it sets how many SMs a collective takes from
            the compute it overlaps (``time.comm_contention_seconds``). Optional; ``None``
            (or no ``sms``) leaves that term out.
        vendor, arch, status, source, notes: provenance.
    """

    id: str
    name: str
    memory: int | float
    memory_bandwidth: int | float
    peak: dict[str, float] = attrs.field(factory=dict)
    mamf: dict[str, float] = attrs.field(factory=dict)
    nvlink_domain: int = 1
    gpus_per_node: int = 8
    intra_node: str = "pcie4"
    inter_node: str = "ib-ndr"
    nics_per_node: int | None = None
    tdp: int | float = 0
    sms: int | None = None
    nvlinks: int | None = None
    vendor: str = ""
    arch: str = ""
    status: str = ""
    source: str = ""
    notes: str = ""

    def peak_flops(self, dtype: str) -> float:
        """Dense peak FLOP/s for ``dtype``; raises :class:`KeyError` when not published."""
        return self.peak[dtype]

    def _problems(self) -> list[Problem]:
        p: list[Problem] = []
        _pos_number(self, "memory", p)
        _pos_number(self, "memory_bandwidth", p)
        _pos_number(self, "tdp", p, allow_zero=True)
        if self.sms is not None and not (isinstance(self.sms, int) and not isinstance(self.sms, bool) and self.sms > 0):
            p.append(Problem("sms", f"{self.sms!r} is not a positive whole number of streaming multiprocessors"))
        if self.nvlinks is not None and not (
            isinstance(self.nvlinks, int) and not isinstance(self.nvlinks, bool) and self.nvlinks > 0
        ):
            p.append(Problem("nvlinks", f"{self.nvlinks!r} is not a positive whole number of NVLink links"))
        for key, value in self.peak.items():
            if key not in DTYPES_COMPUTE:
                from .errors import did_you_mean

                p.append(
                    Problem(
                        f"peak.{key}",
                        f"unknown dtype{did_you_mean(key, DTYPES_COMPUTE)} "
                        f"(allowed: {', '.join(DTYPES_COMPUTE)})",
                    )
                )
            elif not isinstance(value, (int, float)) or value <= 0:
                p.append(Problem(f"peak.{key}", f"{value!r} is not a positive FLOP/s figure"))
        for key, value in self.mamf.items():
            if key not in self.peak:
                from .errors import did_you_mean

                p.append(
                    Problem(
                        f"mamf.{key}",
                        f"no peak.{key} to compare with{did_you_mean(key, list(self.peak))} "
                        f"(peaks given: {', '.join(self.peak) or 'none'})",
                    )
                )
            elif not isinstance(value, (int, float)) or not 0 < value <= self.peak[key]:
                shown = f"{value / 1e12:g} TFLOP/s" if isinstance(value, (int, float)) else repr(value)
                p.append(
                    Problem(
                        f"mamf.{key}",
                        f"{shown} is not a measured matmul rate in (0, peak.{key} = {self.peak[key] / 1e12:g} TFLOP/s]",
                    )
                )
        for name in ("nvlink_domain", "gpus_per_node"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                p.append(Problem(name, f"{v!r} is not a positive integer"))
        return p


@attrs.frozen(kw_only=True)
class Link(_Checked):
    """One interconnect in the α–β model.

    Attributes:
        id: stable lowercase catalog id (``"nvlink4"``, ``"ib-ndr"``).
        name: display name.
        bandwidth: bytes/s **per direction** for one GPU (NVLink) or one port
            (network).
        latency: α, the fixed cost of one message in seconds.
        kind: ``nvlink`` | ``pcie`` | ``network``.
        efficiency: fraction of ``bandwidth`` a large collective achieves.
        status, source, notes: provenance.
    """

    id: str
    name: str
    bandwidth: int | float
    latency: float = 5e-6
    kind: Literal["nvlink", "pcie", "network"] = "network"
    efficiency: float = 0.8
    status: str = ""
    source: str = ""
    notes: str = ""

    def _problems(self) -> list[Problem]:
        p: list[Problem] = []
        _pos_number(self, "bandwidth", p)
        _pos_number(self, "latency", p, allow_zero=True)
        if self.kind not in ("nvlink", "pcie", "network"):
            p.append(Problem("kind", f"{self.kind!r} is not allowed (allowed: nvlink, pcie, network)"))
        if not (isinstance(self.efficiency, (int, float)) and 0 < self.efficiency <= 1):
            p.append(Problem("efficiency", f"{self.efficiency!r} is not in (0, 1]"))
        return p
