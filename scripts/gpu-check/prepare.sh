#!/usr/bin/env bash
# Prepares the real-GPU check (run.sh) for a device call, on this (CPU) machine, in the repo root:
#   1. .device/  : Node, onnxruntime-node and the Vulkan/EGL loaders for the GPU machine (the shared
#                  device-pack.sh; DEVICE_PACK names it; kept when already there, FRESH=1 redoes it)
#   2. .gpucheck/: scripts/gpu-check/main.ts bundled by esbuild (onnxruntime-node and webgpu external) and
#                  the webgpu npm package (its linux-x64 dawn.node only) as webgpu.tar.xz
# Both are listed in .git/info/exclude. Then checks the size of what a call sends (the tracked and
# untracked-not-ignored files plus the carried folders: at most 64 MiB) and prints the `run` call to make.
# Env passed through to run.sh (GC_MODELS, GC_T, GC_LAYERS...) goes into the printed command.
set -euo pipefail
root=$(git rev-parse --show-toplevel); cd "$root"
ex="$root/.git/info/exclude"; [ -f "$ex" ] || ex="$(git rev-parse --git-common-dir)/info/exclude"
mkdir -p "$(dirname "$ex")"
for d in /.device/ /.gpucheck/; do grep -qx "$d" "$ex" 2>/dev/null || echo "$d" >> "$ex"; done

pack=${DEVICE_PACK:-}
for c in ../shared/tools/device-pack.sh /work/shared/tools/device-pack.sh; do [ -z "$pack" ] && [ -f "$c" ] && pack=$c; done
if [ ! -f .device/device-env.sh ] || [ "${FRESH:-0}" = 1 ]; then
  [ -n "$pack" ] || { echo "device-pack.sh not found: set DEVICE_PACK=/path/to/device-pack.sh" >&2; exit 1; }
  pack=$(readlink -f "$pack")
  if [ -d .git ]; then bash "$pack" >&2
  else # a git worktree (.git is a file; device-pack.sh writes .git/info/exclude): pack in a scratch repo
    tmp=$(mktemp -d); git -C "$tmp" init -q; ln -s "$root/node_modules" "$tmp/node_modules"
    (cd "$tmp" && bash "$pack" >&2); rm -rf .device; mv "$tmp/.device" .device; rm -rf "$tmp"
  fi
fi

rm -rf .gpucheck; mkdir -p .gpucheck
npx esbuild scripts/gpu-check/main.ts --bundle --platform=node --format=esm --target=node20 \
  --external:onnxruntime-node --external:webgpu --log-level=warning --outfile=.gpucheck/gpu-check.mjs \
  --banner:js="import { createRequire as __cr } from 'module'; const require = __cr(import.meta.url);"
[ -f node_modules/webgpu/dist/linux-x64/dawn.node ] || { echo "node_modules/webgpu has no linux-x64 dawn.node: run npm ci" >&2; exit 1; }
tar -C node_modules -cf - webgpu/package.json webgpu/index.js webgpu/dist/linux-x64 | xz -T0 -9 > .gpucheck/webgpu.tar.xz

# what the call sends: tracked + untracked-not-ignored files, and the two carried folders
sent=$( { git ls-files -z --cached --others --exclude-standard | xargs -0 -r stat -c %s -- 2>/dev/null; find .device .gpucheck -type f -printf '%s\n'; } | awk '{s+=$1} END {print s+0}')
mib=$(( sent / 1048576 ))
echo "sent with the call: ${mib} MiB of 64 MiB (.device $(du -sm .device | cut -f1) MiB, .gpucheck $(du -sm .gpucheck | cut -f1) MiB)" >&2
[ "$mib" -lt 64 ] || { echo "too large for one call: ignore or remove untracked files" >&2; exit 1; }

envs=""
for v in GC_MODELS GC_T GC_B GC_STEPS GC_RECOMPUTE GC_LAYERS GC_8B_LAYERS GC_BUDGET GC_TORCH; do
  [ -n "${!v:-}" ] && envs+="$v='${!v}' "
done
budget=${GC_BUDGET:-420}
cmd="${envs}timeout $(( budget + 20 )) bash scripts/gpu-check/run.sh"
timeout_s=$(( budget + 45 )); [ "$timeout_s" -gt 600 ] && timeout_s=600
[ ${#cmd} -le 2000 ] || { echo "command over 2,000 characters" >&2; exit 1; }
echo "The device call (one run; results in \$OUT/results.jsonl, env.txt and the *.err logs come back):" >&2
printf '{"command": "%s", "carry": [".device", ".gpucheck"], "timeout_s": %d}\n' "${cmd//\"/\\\"}" "$timeout_s"
