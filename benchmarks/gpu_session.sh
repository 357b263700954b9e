#!/usr/bin/env bash
# Issue #5, Deliver 4: the one prepared run for a session that is lent the device machine
# (one H100 or H200, no network, its own python3 with torch and transformers).
#
# That machine lacks two of llmplan's pure-Python dependencies (cattrs, tomli-w) and
# cannot fetch them, so carry them as wheels (with the attrs and typing-extensions that
# cattrs 26 asks for; 200 KB in all). Here, once, in the repository root:
#
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --implementation cp --platform manylinux2014_x86_64 -d .whl \
#       cattrs==26.2.1 tomli-w==1.2.0 attrs==26.1.0 typing-extensions==4.16.0
#
# (checked on the CPU: a Python with only numpy and sympy imports llmplan and estimates a
# plan with these four on PYTHONPATH, as below).
#
# then run (device tool):  command = "bash benchmarks/gpu_session.sh", carry = [".whl"],
# timeout_s = 540. Everything lands in $OUT (at most 8 files come back):
#   nvidia-smi.csv, calibration.toml + calibrate.log (`llmplan calibrate`: measured GEMM and
#   attention efficiency; the attention sweep's table is appended to the log),
#   attention-sweep.json (benchmarks/attention_sweep.py: SDPA causal forward + backward at the
#   FlashAttention-2 benchmark's shapes beside llmplan's curve), calibration-step.toml (`llmplan calibrate --step`: gemm fitted to a
#   real training step), gpu-train-steps.json/.md/.log (real steps vs llmplan; rewritten
#   after every case, so a run cut short keeps what it measured).
# Copy them to benchmarks/results/ and commit them with the command.
#
# Extra arguments go to benchmarks/gpu_train_step.py (e.g. --cases 1b:2048:0 8b:2048:1).
# BUDGET (seconds, default 330, 30 fewer than before the attention sweep joined) stops starting new
# training cases.
set -uo pipefail
export PYTHONUNBUFFERED=1
OUT=${OUT:-benchmarks/results}
BUDGET=${BUDGET:-330}
mkdir -p "$OUT"
export PYTHONPATH="$PWD"
if compgen -G ".whl/*.whl" > /dev/null; then
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl || exit 1
    export PYTHONPATH="/tmp/site:$PWD"
fi
python3 -c "import torch, transformers, llmplan; print('torch', torch.__version__, 'transformers', transformers.__version__, torch.cuda.get_device_name())" || exit 1
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit,driver_version --format=csv > "$OUT/nvidia-smi.csv" 2>&1
cat "$OUT/nvidia-smi.csv"
python3 -m llmplan calibrate --out "$OUT/calibration.toml" 2>&1 | tee "$OUT/calibrate.log"
python3 benchmarks/attention_sweep.py --out "$OUT" 2>&1 | tee -a "$OUT/calibrate.log"
# a real step of Llama 2 70B's shape cut to 4 layers (about 4B parameters), gemm fitted to it
python3 -m llmplan calibrate examples/llama2-70b-pretrain.toml --step --layers 4 --out "$OUT/calibration-step.toml" 2>&1 | tee -a "$OUT/calibrate.log"
python3 benchmarks/gpu_train_step.py --out "$OUT" --budget-s "$BUDGET" "$@" 2>&1 | tee "$OUT/gpu-train-steps.log"
