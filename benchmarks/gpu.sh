#!/usr/bin/env bash
# The GPU figures of the speed work in one run (sized for a 15-minute device lease):
#   1. the strategy contract suite and the detection-loss sync test on the GPU;
#   2. benchmarks/throughput.py at the quick preset and at a KITTI-like 384×1248, batch 16;
#   3. benchmarks/step_overhead.py at the same two sizes;
#   4. the `make demo` job (`taskweight bench --preset quick`) end to end on the GPU;
#   5. throughput at the quick preset with torch.compile (compile time is not in its figures);
#   6. the mutants only a CUDA device tells apart (issue 18), when mutants/src and the name list were carried.
# The full step (d) runs as CUDA graphs where the strategy allows (cuda_graph: auto) with WORKERS loader
# processes (default 12); throughput-quick-eager repeats the quick measurement without either, in the same run.
# Each step has its own time limit so that one slow step cannot take the others' time.
#
#   OUT=DIR bash benchmarks/gpu.sh            # on the GPU machine; tables and a log land in DIR
#   DEVICE=cpu ROUNDS=1 QUICK=1 bash benchmarks/gpu.sh   # a dry run of the script on a CPU
#   ONLY="throughput-quick overhead-quick" bash benchmarks/gpu.sh   # only these steps
#   BASELINE=DIR bash benchmarks/gpu.sh       # DIR holds an earlier commit's src/ and benchmarks/ (git
#       archive): its throughput is measured on the same machine too (*_baseline.md), the fair comparison
set -uo pipefail
OUT=${OUT:-runs/gpu}
DEVICE=${DEVICE:-cuda}
ROUNDS=${ROUNDS:-12}
PY=${PYTHON:-python3}
mkdir -p "$OUT"
OUTSIDE=${PYTHONPATH:-}  # what the caller put on the path (e.g. carried wheels), kept for the baseline too
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
LOG="$OUT/log.txt"
step() {  # step SECONDS NAME COMMAND...: run with a limit, log its output and its exit status
    local limit=$1 name=$2
    shift 2
    if [[ -n ${ONLY:-} && " $ONLY " != *" $name "* ]]; then return; fi
    echo "=== $name ($(date -u +%T))" | tee -a "$LOG"
    local started=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee -a "$LOG"
    echo "=== $name: exit ${PIPESTATUS[0]} after $((SECONDS - started)) s" | tee -a "$LOG"
}
big=384x1248
if [[ -n ${QUICK:-} ]]; then big=128x416; fi

step 30 environment bash -c "nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>/dev/null;
    $PY -c 'import torch; print(torch.__version__, torch.cuda.is_available())'"
WORKERS=${WORKERS:-12}  # 12 kept the 384×1248 graphed step fed (d/b 1.08, results/gpu-h100-aggregations); 6 gave 0.81
step 150 contract-suite env TASKWEIGHT_TEST_DEVICE="$DEVICE" "$PY" -m pytest -q -p no:cacheprovider \
    tests/test_cuda_graph.py tests/test_strategy_contract.py tests/test_detection_loss_vectorised.py \
    tests/test_batch_transport.py tests/test_solver_survivors.py tests/test_cuda_device_survivors.py
step 60 throughput-quick "$PY" benchmarks/throughput.py --device "$DEVICE" --rounds "$ROUNDS" --workers "$WORKERS" \
    --markdown "$OUT/throughput_gpu_quick.md"
step 60 throughput-quick-eager "$PY" benchmarks/throughput.py --device "$DEVICE" --rounds "$ROUNDS" --workers 0 \
    --cuda-graph off --markdown "$OUT/throughput_gpu_quick_eager.md"
step 100 throughput-kitti "$PY" benchmarks/throughput.py --device "$DEVICE" --rounds "$ROUNDS" --size "$big" \
    --batch 16 --workers "$WORKERS" --markdown "$OUT/throughput_gpu_384x1248.md"
if [[ -n ${BASELINE:-} ]]; then
    step 60 throughput-quick-baseline env PYTHONPATH="$BASELINE/src${OUTSIDE:+:$OUTSIDE}" "$PY" "$BASELINE/benchmarks/throughput.py" \
        --device "$DEVICE" --rounds "$ROUNDS" --markdown "$OUT/throughput_gpu_quick_baseline.md"
    step 90 throughput-kitti-baseline env PYTHONPATH="$BASELINE/src${OUTSIDE:+:$OUTSIDE}" "$PY" "$BASELINE/benchmarks/throughput.py" \
        --device "$DEVICE" --rounds "$ROUNDS" --size "$big" --batch 16 --markdown "$OUT/throughput_gpu_384x1248_baseline.md"
fi
step 60 overhead-quick "$PY" benchmarks/step_overhead.py --device "$DEVICE" --rounds "$ROUNDS" --no-memory \
    --markdown "$OUT/step_overhead_gpu_quick.md"
for graphs in off auto; do  # the same strategies eager, then with CUDA graphs where they allow them
    step 60 "overhead-quick-graph-$graphs" "$PY" benchmarks/step_overhead.py --device "$DEVICE" --rounds "$ROUNDS" \
        --no-memory --cuda-graph "$graphs" --no-representation --methods equal gradnorm uncertainty pcgrad mgda upgrad \
        --markdown "$OUT/step_overhead_gpu_quick_graph_$graphs.md"
done
step 100 overhead-kitti "$PY" benchmarks/step_overhead.py --device "$DEVICE" --rounds "$ROUNDS" --no-memory \
    --size "$big" --batch 16 --markdown "$OUT/step_overhead_gpu_384x1248.md"
demo_methods=()
if [[ -n ${QUICK:-} ]]; then demo_methods=(--methods equal); fi
step 180 demo "$PY" -m taskweight.cli bench --preset quick --out "$OUT/demo" --no-progress "${demo_methods[@]}"
cp "$OUT/demo/table2.md" "$OUT/demo_table2.md" 2>/dev/null
rm -rf "$OUT/demo"
step 80 throughput-quick-compile "$PY" benchmarks/throughput.py --device "$DEVICE" --rounds "$ROUNDS" --compile \
    --markdown "$OUT/throughput_gpu_quick_compile.md"
CUDA_MUTANTS=${CUDA_MUTANTS:-benchmarks/results/mutation-cuda-names.txt}  # one mutant name per line
if [[ -d mutants/src && -f $CUDA_MUTANTS ]]; then
    # shellcheck disable=SC2046  # names have no spaces
    step 200 cuda-mutants env PYTHONPATH="$PWD/mutants/src${OUTSIDE:+:$OUTSIDE}" TASKWEIGHT_TEST_DEVICE="$DEVICE" \
        "$PY" benchmarks/cuda_mutants.py "$OUT/cuda_mutants.json" $(cat "$CUDA_MUTANTS")
fi
exit 0
