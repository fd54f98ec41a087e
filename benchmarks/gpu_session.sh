#!/usr/bin/env bash
# One GPU session's checks, run from the repository root on a machine with CUDA and PyTorch
# (docs/RESULTS.md, "GPU"): parity with cuDNN, float64 gradcheck and training-step speed
# (benchmarks/gpu_check.py), then the trainings named in JOBS (default "ptb": the PTB language
# model, configs/ptb_gpu.toml; "g2p": grapheme-to-phoneme, configs/cmudict_gpu.toml) with the
# suite's CUDA tests beside their start, then their test scores.
#   OUT=gpu_out DEADLINE_S=570 RNNKIT_DATA=~/.cache/rnnkit bash benchmarks/gpu_session.sh
# Through the device tool, whose machine cannot fetch data: copy the fetched datasets into an
# ignored folder first and carry it (mkdir -p .gpu/data; cp -r ~/.cache/rnnkit/{ptb,cmudict}
# .gpu/data; echo /.gpu/ >> .git/info/exclude), then RNNKIT_DATA=$PWD/.gpu/data there.
# DEADLINE_S: seconds the whole script may take; the trainings share what the checks leave of
# it. A dry run without a GPU:
#   GPU_CHECK="--device cpu --quick" PTB_CONFIG=a_cpu_copy.toml G2P_CONFIG=another.toml \
#     JOBS="ptb g2p" bash benchmarks/gpu_session.sh
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

if [ -z "${SKIP_CHECKS:-}" ]; then  # SKIP_CHECKS=1: the trainings alone
  timeout 240 python3 benchmarks/gpu_check.py ${GPU_CHECK:-} --compile --json "$OUT/gpu_check.json" \
    --markdown "$OUT/gpu_check.md" > "$OUT/gpu_check.log" 2>&1
  echo "gpu_check exit $? after $(( $(date +%s) - start )) s"
  tail -n 45 "$OUT/gpu_check.log"
fi

python3 -m pytest -p no:cacheprovider -q -n 4 tests/test_training_device.py tests/test_cuda_graphs.py \
  > "$OUT/pytest.txt" 2>&1 &
tests=$!

jobs=${JOBS:-ptb}  # "ptb", "g2p" or "ptb g2p": the trainings this session runs, in turn
count=$(echo $jobs | wc -w)
for job in $jobs; do
  # each job: an equal share of what is left, less 75 s (PTB) or 150 s (G2P: beam search)
  # for loading, the last epoch and the evaluation
  reserve=$([ "$job" = g2p ] && echo 150 || echo 75)
  left=$(( (DEADLINE_S - ($(date +%s) - start)) / count - reserve ))
  count=$(( count - 1 ))
  minutes=$(python3 -c "print(round(max($left, 60) / 60, 2))")
  run=/tmp/$job-gpu
  rm -rf "$run"
  t0=$(date +%s)
  if [ "$job" = ptb ]; then
    echo "PTB: training for at most $minutes minutes"
    python3 -m rnnkit.cli train lm --config "${PTB_CONFIG:-configs/ptb_gpu.toml}" --out "$run" \
      --set "trainer.max_minutes=$minutes" > "$OUT/ptb_train.log" 2>&1
    echo "train exit $? after $(( $(date +%s) - t0 )) s"
    tail -n 6 "$OUT/ptb_train.log"
    python3 -m rnnkit.cli evaluate "$run" > "$OUT/ptb_eval.txt" 2>&1
    python3 -m rnnkit.cli evaluate "$run" --split val >> "$OUT/ptb_eval.txt" 2>&1
    cat "$OUT/ptb_eval.txt"
    cp "$run"/metrics.csv "$OUT/ptb_metrics.csv" 2>/dev/null
  else
    echo "G2P: training for at most $minutes minutes"
    python3 -m rnnkit.cli train translate --config "${G2P_CONFIG:-configs/cmudict_gpu.toml}" \
      --out "$run" --set "trainer.max_minutes=$minutes" > "$OUT/g2p_train.log" 2>&1
    echo "train exit $? after $(( $(date +%s) - t0 )) s"
    tail -n 6 "$OUT/g2p_train.log"
    python3 -m rnnkit.cli evaluate "$run" > "$OUT/g2p_eval.txt" 2>&1
    python3 -m rnnkit.cli evaluate "$run" --set task.beam=5 >> "$OUT/g2p_eval.txt" 2>&1
    cat "$OUT/g2p_eval.txt"
    cp "$run"/metrics.csv "$OUT/g2p_metrics.csv" 2>/dev/null
  fi
done
wait "$tests"
tail -n 5 "$OUT/pytest.txt"
echo "all done after $(( $(date +%s) - start )) s"
