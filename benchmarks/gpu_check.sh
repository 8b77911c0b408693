#!/usr/bin/env bash
# The GPU check (docs/gpu.md), in one run on a fresh CUDA machine without network. The
# steps' time limits add up to 450 s (a stuck step cannot push the run past 7.5 minutes):
#   1. environment  - versions, device, whether the Triton kernel is in use
#   2. masks        - CUDA masks bit for bit with the NumPy oracle, tl.randint4x as an oracle,
#                     values vs the CPU path, D8/D9 (benchmarks/gpu_masks.py)
#   3. kernel tests - tests/test_triton_kernel.py on the GPU (where pytest is installed)
#   4. report       - the conformance report of the torch backend on CUDA (D1-D11, M2-M4)
#   5. bench        - dropout-ref bench --device cuda: forward, forward + backward, seed= mode,
#                     bytes saved for backward, one MLP epoch; ours vs F.dropout vs X * 2.0
#   6. gpt          - the course GPT on CUDA: train-mode logits vs the NumPy oracle, loss and
#                     gradients vs the CPU (SPEC X4); train-step times, dropout_layer (default
#                     and portable) vs F.dropout at every site (benchmarks/gpu_gpt.py)
#   7. compiled     - dropout-ref bench --compiled --device cuda (SPEC S1-S3): 100
#                     torch.compile'd MLP steps with an early-linear rate and a new seed each
#                     step as tensors: Dynamo graphs after warm-up, step time vs constants
#
# Usage, from anywhere:  bash benchmarks/gpu_check.sh
# Outputs go to $OUT (if set) or ./gpu_check_out: one file per step, summary.txt, bench.json,
# bench.md, gpt.json, compiled.json. Exit status: 0 when every step passed, else 1 (every step
# runs regardless).
#
# Needs python3 with torch (CUDA) and numpy; uses triton when importable. The project is
# not installed: PYTHONPATH=src. Optional wheels (no network): put them in ./wheels/ and they
# are installed with pip --no-index. The steps need none of rich, matplotlib, scikit-learn or
# platformdirs (imported lazily or not at all); the report needs scipy (jax brings it);
# step 3 needs pytest (wheels: pytest, pluggy, iniconfig, packaging).
# Environment: PYTHON (default python3), GPU_CHECK_SIZES (default 24,27),
# GPU_CHECK_DTYPES (default float32,bfloat16), GPU_CHECK_REPEATS (default 20).
set -u

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 1
PY="${PYTHON:-python3}"
OUT_DIR="${OUT:-$ROOT/gpu_check_out}"
mkdir -p "$OUT_DIR"
SUMMARY="$OUT_DIR/summary.txt"
: > "$SUMMARY"
export PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
FAILED=0

log() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$SUMMARY"; }

# step NAME SECONDS COMMAND...: run with a time limit, output to $OUT_DIR/NAME.txt.
step() {
    local name="$1" limit="$2"
    shift 2
    log "start $name (limit ${limit} s)"
    local start=$SECONDS
    timeout --kill-after=10 "$limit" "$@" > "$OUT_DIR/$name.txt" 2>&1
    local rc=$?
    if [ "$rc" -eq 0 ]; then
        log "ok    $name ($((SECONDS - start)) s)"
    else
        FAILED=1
        log "FAIL  $name: exit $rc ($((SECONDS - start)) s; 124 = time limit); last lines:"
        tail -n 15 "$OUT_DIR/$name.txt" | sed 's/^/      /' | tee -a "$SUMMARY"
    fi
    return 0
}

if [ -d wheels ] && ls wheels/*.whl > /dev/null 2>&1; then
    log "installing carried wheels from ./wheels (no index)"
    for pkg in platformdirs rich scipy pytest; do
        if ! "$PY" -c "import $pkg" > /dev/null 2>&1 && ls wheels/ | grep -qi "^$pkg-"; then
            "$PY" -m pip install --no-index --find-links wheels/ --quiet "$pkg" >> "$SUMMARY" 2>&1 \
                || log "could not install $pkg from ./wheels (going on)"
        fi
    done
fi

step environment 20 "$PY" -c "
import sys, importlib.util
import numpy, torch
print('python', sys.version.split()[0], 'numpy', numpy.__version__, 'torch', torch.__version__)
print('cuda available', torch.cuda.is_available(), 'devices', torch.cuda.device_count())
if torch.cuda.is_available():
    print('device', torch.cuda.get_device_name(0))
for mod in ('triton', 'scipy', 'rich', 'pytest', 'platformdirs', 'jax'):
    print(mod, 'present' if importlib.util.find_spec(mod) else 'MISSING')
from dropout_ref.torch.fast import triton_kernel
print('kernel:', triton_kernel.unavailable_reason() or 'Triton kernel in use')
sys.exit(0 if torch.cuda.is_available() else 3)
"

step masks 50 "$PY" benchmarks/gpu_masks.py --device cuda --json "$OUT_DIR/masks.json"

if "$PY" -c "import pytest" > /dev/null 2>&1; then
    # One process (-p no:xdist): one file on one GPU; xdist's workers would each import torch.
    step kernel_tests 60 "$PY" -m pytest -q -p no:cacheprovider -p no:xdist tests/test_triton_kernel.py
else
    log "skip  kernel_tests: pytest is not installed (carry its wheels in ./wheels to run it)"
fi

step report 70 "$PY" -m dropout_ref report --backend torch --device cuda --format markdown

step bench 100 "$PY" -m dropout_ref bench --device cuda \
    --sizes "${GPU_CHECK_SIZES:-24,27}" --dtypes "${GPU_CHECK_DTYPES:-float32,bfloat16}" \
    --repeats "${GPU_CHECK_REPEATS:-20}" --mlp-epoch --output "$OUT_DIR/bench.json"
cp "$OUT_DIR/bench.txt" "$OUT_DIR/bench.md" 2>/dev/null

step gpt 60 "$PY" benchmarks/gpu_gpt.py --device cuda --json "$OUT_DIR/gpt.json"
step compiled 90 "$PY" -m dropout_ref bench --compiled --backend torch --device cuda \
    --steps 100 --output "$OUT_DIR/compiled.json"

log "done: $([ "$FAILED" -eq 0 ] && echo 'every step passed' || echo 'some step FAILED') in ${SECONDS} s; outputs in $OUT_DIR"
exit "$FAILED"
