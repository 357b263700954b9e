"""Pipeline sends between stages (llmplan.formulas.comm): Megatron-LM's scatter/gather of the
boundary tensor over the tensor-parallel ranks (Narayanan et al. 2021 §4.1), by hand."""

from __future__ import annotations

import attrs
import pytest

import llmplan
from llmplan import symbols as S
from tests.plans import make_plan


def _est(**par):
    plan = make_plan(gpus=64, tp=8, pp=2, seq_len=2048, global_batch=64)
    return llmplan.estimate(attrs.evolve(plan, parallelism=attrs.evolve(plan.parallelism, **par)))


def _act(est):
    v = est.values
    return v[S.q_a] * 2048 * v[S.b] * v[S.h]  # the boundary tensor of one micro-batch, s·b·h elements


def test_megatron_without_sp_scatters_over_tp_and_gathers_over_nvlink():
    # each of the 8 TP ranks sends 1/8 of the (replicated) tensor over its own link, and the
    # receiving stage all-gathers it over the TP group: 7 steps of α_tp and 7/8 of it at W_tp
    est = _est(sequence_parallel=False)
    v, act = est.values, _act(est)
    msgs = 2 * v[S.m] * 1  # activations forward, gradients backward; 1F1B (v = 1)
    expected = msgs * (v[S.alpha_pp] + act / 8 / v[S.W_pp] + 7 * v[S.alpha_tp] + 7 / 8 * act / v[S.W_tp])
    assert est.value("communication.pp_seconds") == pytest.approx(expected, rel=1e-12)
    pp_bytes = est.value("communication.per_step_bytes") - est.value("communication.dp_bytes") - est.value("communication.tp_bytes")
    assert pp_bytes == pytest.approx(msgs * (act / 8 + 7 / 8 * act), rel=1e-12)


def test_sequence_parallel_sends_the_shard_without_a_gather():
    est = _est(sequence_parallel=True)
    v, act = est.values, _act(est)
    msgs = 2 * v[S.m]
    assert est.value("communication.pp_seconds") == pytest.approx(msgs * (v[S.alpha_pp] + act / 8 / v[S.W_pp]), rel=1e-12)


def test_other_frameworks_send_the_whole_tensor():
    est = _est(sequence_parallel=False, framework="hf")
    v, act = est.values, _act(est)
    msgs = 2 * v[S.m]
    assert est.value("communication.pp_seconds") == pytest.approx(msgs * (v[S.alpha_pp] + act / v[S.W_pp]), rel=1e-12)
