#!/usr/bin/env bash
# GPU acceptance check: one call on a machine with one CUDA GPU and no internet, from a fresh clone, <= 8 min.
#
#   benchmarks/gpu_check.sh              # CUDA: full-size `synthetic` preset, DPT-SwinV2-L-384-shaped depth model
#   benchmarks/gpu_check.sh --dry-run    # the same steps on the CPU at tiny sizes (checks the script itself)
#
# Steps (each is timed and recorded; a failing step does not stop the others):
#   install       pip install -e '.[dev]' (offline: falls back to --no-deps over what the machine has)
#   cuda_tests    pytest -m cuda (the tests marked for a GPU; "none marked" is recorded as such)
#   bench_fp32 / bench_bf16 / bench_compiled   dkp bench on the `synthetic` preset (VGG16 with random weights:
#                 nothing can be downloaded there)
#   prepare       dkp prepare synthetic (the training data)
#   train         a few hundred steps of the preset's image-only student: last loss, median images/s
#   depth         benchmarks/depth.py on a DPT-SwinV2-large-384-shaped model with random weights: images/s
# and the peak GPU memory (each stage's torch figure, and nvidia-smi's sampled maximum over the whole script).
# Everything goes into one JSON file: $OUT/gpu_check.json (./gpu_check.json when OUT is unset).
# PYTHON (default python3) is the interpreter that holds torch.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PYTHON=${PYTHON:-python3}
DRY=0
[ "${1:-}" = "--dry-run" ] && DRY=1
RESULT=${OUT:-$ROOT}/gpu_check.json
WORK=$(mktemp -d)
trap 'kill "$SMI_PID" 2>/dev/null; rm -rf "$WORK"' EXIT
export HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1

if [ "$DRY" = 1 ]; then
  DEVICE=cpu
  TINY=(--set model.image_size=32 --set model.n_keypoints=4 --set model.width=0.125 --set loss.perceptual_size=32)
  SIZE=(--quick "${TINY[@]}" --batch 2)   # bench
  TRAIN_SETS=("${TINY[@]}" --set train.batch_size=2)
  BENCH_STEPS=1; N_TRAIN=16; N_EVAL=8; ITERATIONS=3
  DEPTH=(--arch tiny-random --images 8 --batch-size 4 --frame 32 --repeats 1)
  BF16=auto  # dkp refuses bf16 on the CPU; auto is bf16 on CUDA and fp32 here, so the same command line runs
  STEP_LIMIT=300
else
  DEVICE=cuda
  SIZE=(); TRAIN_SETS=()
  BENCH_STEPS=0; N_TRAIN=2048; N_EVAL=64; ITERATIONS=300
  DEPTH=(--arch dpt-swinv2-large-384 --images 512 --batch-size 32 --frame 128 --repeats 1)
  BF16=bf16
  STEP_LIMIT=240
fi

SMI_LOG=$WORK/smi.csv
SMI_PID=
if command -v nvidia-smi >/dev/null 2>&1; then  # the whole script's peak, whichever process holds the memory
  nvidia-smi --query-gpu=memory.used,memory.total,name --format=csv,noheader,nounits -lms 500 > "$SMI_LOG" 2>/dev/null &
  SMI_PID=$!
fi

STEPS_LOG=$WORK/steps.jsonl
: > "$STEPS_LOG"
step() {  # step NAME COMMAND...: run with a time limit, keep rc, seconds and the last of its output
  local name=$1; shift
  local t0=$SECONDS rc=0
  echo "=== $name: $*" >&2
  timeout "$STEP_LIMIT" bash -c '"$@"' _ "$@" > "$WORK/$name.out" 2> "$WORK/$name.err" || rc=$?  # functions too
  echo "    rc=$rc in $((SECONDS - t0)) s" >&2
  "$PYTHON" - "$name" "$rc" "$((SECONDS - t0))" "$WORK/$name.out" "$WORK/$name.err" >> "$STEPS_LOG" <<'EOF'
import json, sys
name, rc, seconds, out, err = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
text = open(out, errors="replace").read()
try:
    parsed = json.loads(text[text.index("{"):]) if "{" in text else None
except ValueError:
    parsed = None
print(json.dumps({"step": name, "rc": rc, "seconds": seconds, "json": parsed,
                  "stdout_tail": None if parsed is not None else text[-1500:],
                  "stderr_tail": open(err, errors="replace").read()[-1500:] if rc else None}))
EOF
  return 0
}

# --- install ------------------------------------------------------------------------------------------------------
install() {
  # offline, pip gives up on the index at once (no retries) and dkp goes in over the machine's own packages
  "$PYTHON" -m pip install -q --retries 0 --timeout 5 --no-build-isolation -e "$ROOT[dev]" \
    || "$PYTHON" -m pip install -q --no-deps --no-build-isolation -e "$ROOT"
  "$PYTHON" -c "import dkp_tui, torch; print('{\"dkp\": \"%s\", \"torch\": \"%s\", \"cuda\": %s}' % (dkp_tui.__version__, torch.__version__, str(torch.cuda.is_available()).lower()))"
}
export -f install
step install install
DKP=("$PYTHON" -m dkp_tui)

# --- tests marked for CUDA ----------------------------------------------------------------------------------------
cuda_tests() {
  local rc=0
  "$PYTHON" -m pytest -q -n 0 -m cuda -p no:cacheprovider "$ROOT/tests" || rc=$?
  if [ "$rc" -eq 5 ]; then echo '{"marked": 0, "note": "no test is marked cuda"}'; return 0; fi
  return "$rc"
}
export -f cuda_tests
export ROOT PYTHON
step cuda_tests cuda_tests

# --- VGG16 with random weights (the perceptual loss; no download there) ---------------------------------------------
VGG=$WORK/vgg16-random.safetensors
"$PYTHON" - "$VGG" <<'EOF'
import sys, torch, torchvision
from safetensors.torch import save_file
torch.manual_seed(0)
save_file({k: v.contiguous() for k, v in torchvision.models.vgg16().state_dict().items()}, sys.argv[1])
EOF
VGG_SET=(--set "loss.perceptual_weights=\"$VGG\"")

# --- dkp bench: fp32, bf16, compiled --------------------------------------------------------------------------------
BENCH=("${DKP[@]}" bench --preset synthetic --device "$DEVICE" --steps "$BENCH_STEPS" --json "${VGG_SET[@]}" "${SIZE[@]}")
step bench_fp32 "${BENCH[@]}" --set 'train.precision="fp32"'
step bench_bf16 "${BENCH[@]}" --set "train.precision=\"$BF16\""
step bench_compiled "${BENCH[@]}" --set "train.precision=\"$BF16\"" --set train.compile=true

# --- a few hundred training steps -----------------------------------------------------------------------------------
DATA=$WORK/data
step prepare "${DKP[@]}" prepare synthetic --preset synthetic --out "$DATA" --n-train "$N_TRAIN" --n-fit "$N_EVAL" \
  --n-test "$N_EVAL" --json --quiet
step train "${DKP[@]}" train --preset synthetic --device "$DEVICE" --run "$WORK/student-only" \
  --iterations "$ITERATIONS" --set kd.gamma=0 --set "data.dataset=\"$DATA\"" --set train.sample_every=100000 \
  --set train.checkpoint_every=100000 "${VGG_SET[@]}" "${TRAIN_SETS[@]}" --json --quiet

# --- the depth stage on a DPT-SwinV2-L-384-shaped model -------------------------------------------------------------
step depth "$PYTHON" benchmarks/depth.py --device "$DEVICE" "${DEPTH[@]}" --json

[ -n "$SMI_PID" ] && kill "$SMI_PID" 2>/dev/null
SMI_PID=
mkdir -p "$(dirname "$RESULT")"
"$PYTHON" - "$STEPS_LOG" "$WORK/student-only/metrics.jsonl" "$SMI_LOG" "$RESULT" "$DRY" "$SECONDS" <<'EOF'
import json, os, platform, statistics, sys
steps_log, metrics, smi, result, dry, seconds = sys.argv[1:7]
steps = {}
for line in open(steps_log):
    s = json.loads(line)
    steps[s.pop("step")] = s
train = {}
if os.path.isfile(metrics):
    rows = [json.loads(x) for x in open(metrics) if x.strip()]
    st = [r for r in rows if r.get("kind") == "step"]
    if st:
        rates = [r["images_per_s"] for r in st[len(st) // 2:] if r.get("images_per_s")]
        train = {"steps": st[-1]["step"], "first_loss": st[0]["loss"], "last_loss": st[-1]["loss"],
                 "median_images_per_s_second_half": statistics.median(rates) if rates else None,
                 "gpu_mem_mb_max": max((r["gpu_mem_mb"] for r in st if r.get("gpu_mem_mb")), default=None)}
peak = None
if os.path.isfile(smi) and os.path.getsize(smi):
    used = [float(x.split(",")[0]) for x in open(smi) if x.strip() and x.split(",")[0].strip().isdigit()]
    total = open(smi).readline().split(",")
    peak = {"used_mib_max": max(used) if used else None, "total_mib": float(total[1]) if len(total) > 2 else None,
            "gpu": total[2].strip() if len(total) > 2 else None}
def bench_rows(name):
    j = (steps.get(name) or {}).get("json") or {}
    return {r: {k: v.get(k) for k in ("images_per_s", "peak_memory_mb", "precision", "compiled", "batch")}
            for r, v in (j.get("train") or {}).items() if isinstance(v, dict)} if isinstance(j, dict) else {}
depth = (steps.get("depth") or {}).get("json") or {}
out = {
    "dry_run": dry == "1", "seconds": int(seconds), "host": platform.node(),
    "ok": all(s["rc"] == 0 for s in steps.values()),
    "failed": [k for k, s in steps.items() if s["rc"] != 0],
    "summary": {
        "bench": {n: bench_rows(n) for n in ("bench_fp32", "bench_bf16", "bench_compiled")},
        "train": train,
        "depth_images_per_s": {k: depth.get(k) for k in ("dkp_images_per_s", "bare_images_per_s", "ratio", "model",
                                                          "device", "dtype")} if isinstance(depth, dict) else None,
        "peak_gpu_memory": peak,
    },
    "steps": steps,
}
with open(result, "w") as f:
    json.dump(out, f, indent=2)
print(json.dumps({k: out[k] for k in ("dry_run", "ok", "failed", "seconds", "summary")}, indent=2))
EOF
