#!/usr/bin/env bash
# The real-GPU check on a lent machine (no Node, no network there): prepare.sh made .device/ and .gpucheck/
# here; this runs, in one device call, the adapter report, Lathe's fused LoRA step on its GPU backend per
# model and T, and the PyTorch + PEFT peer on the same folders. Every row is one JSON line in
# $OUT/results.jsonl (errors too: a failing row never stops the rest); logs beside it.
# Env (defaults): GC_MODELS ("SmolLM2-135M Llama-3.2-1B Llama-3.1-8B"), GC_T (2048,512), GC_B (1),
# GC_STEPS (3), GC_RECOMPUTE (on), GC_LAYERS (0 = all; cuts every model's layers), GC_8B_LAYERS (8:
# Llama-3.1-8B runs 8 of its 32 layers unless GC_LAYERS or this says otherwise; 0 = all 32: NF4 quantizing
# and writing the whole 8B take minutes), GC_BUDGET (seconds for the whole script, 420), GC_ROOT
# (/tmp/gpu-check: model folders, NF4 cache), GC_TORCH (1; 0 skips the peer), GC_PYTHON (python3).
# Run from the repo root: bash scripts/gpu-check/run.sh
set -u -o pipefail
cd "$(dirname "$0")/../.."
O=${OUT:-/tmp/gcout}; mkdir -p "$O"; R="$O/results.jsonl"; : > "$R"
MODELS=${GC_MODELS:-SmolLM2-135M Llama-3.2-1B Llama-3.1-8B}; TS=${GC_T:-2048,512}; B=${GC_B:-1}; STEPS=${GC_STEPS:-3}
RC=${GC_RECOMPUTE:-on}; LAYERS=${GC_LAYERS:-0}; BUDGET=${GC_BUDGET:-420}
export GC_ROOT=${GC_ROOT:-/tmp/gpu-check} GC_CACHE=${GC_CACHE:-/tmp/gpu-check/cache} PYTHONUNBUFFERED=1
mkdir -p "$GC_ROOT"; rm -f "$GC_ROOT"/.gen-*-done "$GC_ROOT"/gen-*.jsonl
PY=${GC_PYTHON:-python3}
row() { tee -a "$R"; }
lay() { if [ "$1" = Llama-3.1-8B ] && [ "$LAYERS" = 0 ]; then echo "${GC_8B_LAYERS:-8}"; else echo "$LAYERS"; fi; }
note() { printf '{"kind":"runner","note":"%s","t_s":%d}\n' "$1" "$SECONDS" | row; }
left() { echo $(( BUDGET - SECONDS )); }
# a row's time limit: what is left, less a reserve for the rows after it (never under 20 s)
cap() { local l; l=$(( $(left) - $1 )); [ "$l" -lt 20 ] && l=20; echo "$l"; }

if [ -f .device/device-env.sh ]; then
  # shellcheck disable=SC1091
  source .device/device-env.sh
  export LD_LIBRARY_PATH=/usr/local/nvidia/lib64:${LD_LIBRARY_PATH:-}
  [ -n "${VK_DRIVER_FILES:-}" ] || for f in /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do [ -f "$f" ] && export VK_DRIVER_FILES=$f && break; done
  NM=/tmp/dev/node_modules
else
  NM=${GC_NODE_MODULES:-$PWD/node_modules}  # (a dry run on a machine with Node and the repo's node_modules)
fi
command -v node >/dev/null || { note "no node: .device/device-env.sh missing or broken"; exit 1; }
# ESM bundles ignore NODE_PATH: node_modules beside the bundle; the webgpu package unpacked into it
ln -sfn "$NM" .gpucheck/node_modules
[ -f .gpucheck/webgpu.tar.xz ] && [ ! -d "$NM/webgpu/dist" ] && xz -dc .gpucheck/webgpu.tar.xz | tar -C "$NM" -xf -
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1; echo "VK_DRIVER_FILES=${VK_DRIVER_FILES:-}"
  cat "${VK_DRIVER_FILES:-/dev/null}"; ldconfig -p | grep -E 'libvulkan|nvidia' | head; node -v; nproc; free -g; df -h /tmp; } > "$O/env.txt" 2>&1
J=".gpucheck/gpu-check.mjs"
# the models, written in the background (small first) while the adapter is asked and the first rows run
( for m in $MODELS; do node "$J" gen "$m" --layers "$(lay "$m")" > "$GC_ROOT/gen-$m.jsonl" 2>> "$O/gen.err"; touch "$GC_ROOT/.gen-$m-done"; done ) &
timeout 60 node "$J" adapter 2>> "$O/lathe.err" | row
waitgen() { while [ ! -f "$GC_ROOT/.gen-$1-done" ] && [ "$(left)" -gt 30 ]; do sleep 1; done; cat "$GC_ROOT/gen-$1.jsonl" 2>/dev/null | row; }
n=$(echo $MODELS | wc -w); i=0
for m in $MODELS; do
  i=$((i + 1)); waitgen "$m"
  # reserve for what follows: ~60 s per later model plus the peer of this one
  timeout "$(cap $(( (n - i) * 60 + 40 )))" node "$J" step "$m" --layers "$(lay "$m")" --T "$TS" --B "$B" --steps "$STEPS" --recompute "$RC" 2>> "$O/lathe.err" | row
  rc=$?; [ $rc = 124 ] || [ $rc -ge 128 ] && note "lathe $m stopped (rc $rc: timeout or crash; see lathe.err)"
  if [ "${GC_TORCH:-1}" = 1 ]; then
    timeout "$(cap $(( (n - i) * 60 )))" "$PY" scripts/gpu-check/torch_peer.py "$GC_ROOT" "$m" --layers "$(lay "$m")" --T "$TS" --B "$B" --steps "$STEPS" --recompute "$RC" 2>> "$O/torch.err" | row
    rc=$?; [ $rc = 124 ] || [ $rc -ge 128 ] && note "torch $m stopped (rc $rc: timeout or crash; see torch.err)"
  fi
done
kill %1 2>/dev/null; wait
note "done in ${SECONDS}s"
tail -n 5 "$O"/*.err 2>/dev/null
