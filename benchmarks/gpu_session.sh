#!/usr/bin/env bash
# One GPU session's checks, run from the repository root on a machine with CUDA and PyTorch
# (docs/RESULTS.md, "GPU"): parity with cuDNN, float64 gradcheck and training-step speed
# (benchmarks/gpu_check.py), then the PTB language model on the GPU (configs/ptb_gpu.toml)
# with the suite's CUDA tests beside its start, then its test perplexity.
#   OUT=gpu_out DEADLINE_S=570 RNNKIT_DATA=~/.cache/rnnkit bash benchmarks/gpu_session.sh
# DEADLINE_S: seconds the whole script may take; the PTB training gets what the checks leave
# of it, less 75 s for loading, the last epoch and the evaluation. A dry run without a GPU:
#   GPU_CHECK="--device cpu --quick" PTB_CONFIG=a_cpu_copy.toml bash benchmarks/gpu_session.sh
set -u
OUT=${OUT:-gpu_out}
DEADLINE_S=${DEADLINE_S:-570}
mkdir -p "$OUT"
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
export RNNKIT_EXT=${RNNKIT_EXT:-0}  # the CPU extension is not what a GPU session measures
start=$(date +%s)
{
  nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
  python3 -c "import torch, sys; print(sys.version.split()[0], 'torch', torch.__version__, \
'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version())"
  nproc
} > "$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

timeout 240 python3 benchmarks/gpu_check.py ${GPU_CHECK:-} --compile --json "$OUT/gpu_check.json" \
  --markdown "$OUT/gpu_check.md" > "$OUT/gpu_check.log" 2>&1
echo "gpu_check exit $? after $(( $(date +%s) - start )) s"
tail -n 45 "$OUT/gpu_check.log"

python3 -m pytest -p no:cacheprovider -q -n 4 tests/test_training_device.py tests/test_cuda_graphs.py \
  > "$OUT/pytest.txt" 2>&1 &
tests=$!

left=$(( DEADLINE_S - ($(date +%s) - start) - 75 ))
minutes=$(python3 -c "print(round(max($left, 60) / 60, 2))")
echo "PTB: training for at most $minutes minutes"
run=/tmp/ptb_gpu
rm -rf "$run"
t0=$(date +%s)
python3 -m rnnkit.cli train lm --config "${PTB_CONFIG:-configs/ptb_gpu.toml}" --out "$run" \
  --set "trainer.max_minutes=$minutes" > "$OUT/ptb_train.log" 2>&1
echo "train exit $? after $(( $(date +%s) - t0 )) s"
tail -n 6 "$OUT/ptb_train.log"
python3 -m rnnkit.cli evaluate "$run" > "$OUT/ptb_eval.txt" 2>&1
python3 -m rnnkit.cli evaluate "$run" --split val >> "$OUT/ptb_eval.txt" 2>&1
cat "$OUT/ptb_eval.txt"
cp "$run"/metrics.csv "$OUT/ptb_metrics.csv" 2>/dev/null
wait "$tests"
tail -n 5 "$OUT/pytest.txt"
echo "all done after $(( $(date +%s) - start )) s"
