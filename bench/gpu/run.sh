#!/usr/bin/env bash
# One call on a machine with an NVIDIA GPU and a PyTorch install (no internet needed):
#
#   bench/gpu/run.sh OUT_DIR          build the shim against that PyTorch's libtorch, run the
#                                     backend conformance suite on torch-cuda, and compare our
#                                     speed with PyTorch on the GPU (fp32, then bf16 autocast)
#   bench/gpu/run.sh OUT_DIR --cpu    the same parts without a GPU (torch-cpu; a short compare)
#   bench/gpu/run.sh --pack DIR       (here, before the trip) put deno.xz and deno_dir.tar.xz
#                                     (the npm cache the runs need) into DIR
#
# Every result lands in OUT_DIR as JSON: machine.json, build.json, conformance.json (+ .log),
# compare_fp32.jsonl, compare_bf16.jsonl (+ .log), distributed.json (+ .log: with 2+ GPUs, NCCL
# all-reduce vs torch.distributed and images/s per GPU over all GPUs vs 1), summary.json.
#
# Environment:
#   DENO_BIN_DIR   folder holding `deno` or `deno.xz` (and optionally `deno_dir.tar.xz`, the
#                  Deno cache with the npm packages); default: `deno` on PATH and its cache
#   PEER_PYTHON    the Python with torch (default: the first of python3, /usr/bin/python3 that
#                  imports torch)
#   BENCH_REPS     timed repetitions per side (default 5 on the GPU, 1 with --cpu)
#   BENCH_WORKLOADS  e.g. "a,c" (default all: a,b,c,d)
set -euo pipefail

usage() {
  sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
}

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
STARTED=$(date +%s)

if [[ "${1:-}" == "--pack" ]]; then
  [[ -n "${2:-}" ]] || usage
  mkdir -p "$2"
  deno_path="$(command -v deno)" || { echo "run.sh --pack: no deno on PATH" >&2; exit 1; }
  echo "packing $deno_path -> $2/deno.xz"
  xz -T0 -6 -c "$deno_path" > "$2/deno.xz.tmp" && mv "$2/deno.xz.tmp" "$2/deno.xz"
  # A fresh Deno cache with exactly the npm packages of the runs; source maps dropped (~8 MB xz).
  cache="$(mktemp -d)"
  (cd "$ROOT" && DENO_DIR="$cache" deno cache bench/compare.ts tests/backend/conformance_test.ts)
  find "$cache/npm" -name '*.map' -delete
  echo "packing the npm cache -> $2/deno_dir.tar.xz"
  tar -C "$cache" -cf - npm | xz -T0 -6 > "$2/deno_dir.tar.xz.tmp"
  mv "$2/deno_dir.tar.xz.tmp" "$2/deno_dir.tar.xz"
  rm -rf "$cache"
  ls -la "$2"
  exit 0
fi

OUT="${1:-}"
[[ -n "$OUT" && "$OUT" != --* ]] || usage
CPU=0
[[ "${2:-}" == "--cpu" ]] && CPU=1
[[ $# -le 2 ]] || usage
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

log() { echo "[run.sh $(( $(date +%s) - STARTED ))s] $*" >&2; }
fail() {
  log "FAILED: $*"
  printf '{"ok": false, "error": %s, "seconds": %d}\n' \
    "$(printf '%s' "$*" | "${PY:-python3}" -c 'import json,sys; print(json.dumps(sys.stdin.read()))' 2>/dev/null || echo '"see log"')" \
    "$(( $(date +%s) - STARTED ))" > "$OUT/summary.json"
  exit 1
}
# Writes JSON to a temp file, then renames: nothing half-written is left behind.
write_json() { cat > "$OUT/$1.tmp" && mv "$OUT/$1.tmp" "$OUT/$1"; }

# ---- deno (carried in) ----
DENO=""
CACHED_ONLY=""
if [[ -n "${DENO_BIN_DIR:-}" ]]; then
  if [[ -x "$DENO_BIN_DIR/deno" ]]; then
    DENO="$DENO_BIN_DIR/deno"
  elif [[ -f "$DENO_BIN_DIR/deno.xz" ]]; then
    xz -dc "$DENO_BIN_DIR/deno.xz" > "$WORK/deno" && chmod +x "$WORK/deno"
    DENO="$WORK/deno"
  fi
  if [[ -f "$DENO_BIN_DIR/deno_dir.tar.xz" ]]; then
    export DENO_DIR="$WORK/deno_dir"
    mkdir -p "$DENO_DIR"
    xz -dc "$DENO_BIN_DIR/deno_dir.tar.xz" | tar -C "$DENO_DIR" -xf -
    CACHED_ONLY="--cached-only" # offline: fail fast and clearly on anything not packed
  fi
fi
[[ -n "$DENO" ]] || DENO="$(command -v deno || true)"
[[ -n "$DENO" ]] || fail "no deno: set DENO_BIN_DIR to a folder with deno or deno.xz (run.sh --pack makes one)"
log "deno: $("$DENO" --version | head -1)"

# ---- python with torch ----
PY="${PEER_PYTHON:-}"
if [[ -z "$PY" ]]; then
  for candidate in python3 /usr/bin/python3; do
    if "$candidate" -c 'import torch' 2>/dev/null; then PY="$candidate"; break; fi
  done
fi
[[ -n "$PY" ]] || fail "no Python with torch found: set PEER_PYTHON"
export PEER_PYTHON="$PY"
"$PY" - > "$WORK/machine.json" <<'EOF' || fail "could not describe the machine"
import json, os, platform, subprocess, torch
info = {"torch": torch.__version__, "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(), "cpu_count": os.cpu_count(),
        "platform": platform.platform(), "python": platform.python_version(),
        "torch_threads": torch.get_num_threads()}
if torch.cuda.is_available():
    p = torch.cuda.get_device_properties(0)
    info.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1),
                gpu_capability=f"{p.major}.{p.minor}", bf16=torch.cuda.is_bf16_supported())
try:
    info["nvidia_smi"] = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True,
                                        timeout=20).stdout.strip()
except Exception:
    pass
print(json.dumps(info, indent=2))
EOF
write_json machine.json < "$WORK/machine.json"
log "machine: $(tr -d '\n' < "$OUT/machine.json" | tr -s ' ')"
if [[ $CPU == 0 ]]; then
  "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' ||
    fail "PyTorch sees no GPU (use --cpu for the CPU-only parts)"
fi

# ---- build the shim against this PyTorch's libtorch ----
TORCH_ROOT="$("$PY" -c 'import os, torch; print(os.path.dirname(os.path.dirname(torch.utils.cmake_prefix_path)))')"
if [[ -f "$TORCH_ROOT/include/ATen/ATen.h" && -f "$TORCH_ROOT/lib/libc10.so" ]]; then
  export LIBTORCH="$TORCH_ROOT"
  log "building the shim against $LIBTORCH"
else
  log "$TORCH_ROOT has no headers (a distribution package?): the build looks for libtorch itself"
fi
build_start=$(date +%s)
(cd "$ROOT" && "$DENO" run $CACHED_ONLY -A native/build.ts) > "$OUT/build.log" 2>&1 ||
  fail "building the shim failed (see $OUT/build.log): $(tail -5 "$OUT/build.log")"
printf '{"ok": true, "libtorch": "%s", "seconds": %d}\n' "${LIBTORCH:-auto}" \
  "$(( $(date +%s) - build_start ))" | write_json build.json
log "shim built"

# ---- conformance suite on the torch backend ----
BACKEND=torch-cuda
[[ $CPU == 1 ]] && BACKEND=torch-cpu
conf_start=$(date +%s)
set +e
(cd "$ROOT" && DENO_DIFFUSION_REQUIRE="$BACKEND" "$DENO" test $CACHED_ONLY -A --no-check \
  tests/backend/conformance_test.ts) > "$OUT/conformance.log" 2>&1
conf_status=$?
set -e
"$PY" - "$OUT/conformance.log" "$BACKEND" "$conf_status" "$(( $(date +%s) - conf_start ))" \
  > "$WORK/conformance.json" <<'EOF'
import json, re, sys
log, backend, status, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
text = re.sub(r"\x1b\[[0-9;]*m", "", open(log, encoding="utf-8", errors="replace").read())
tag = f"[{backend}]"
ok = [l for l in text.splitlines() if tag in l and re.search(r"\.\.\. ok", l)]
bad = [l.split(" ...")[0].strip() for l in text.splitlines() if tag in l and "FAILED" in l]
summary = re.findall(r"(ok|FAILED) \| (\d+) passed.*?\| (\d+) failed", text)
print(json.dumps({"ok": status == 0, "backend": backend, "exit_code": status,
                  "passed_on_backend": len(ok), "failed_on_backend": sorted(set(bad)),
                  "summary": " | ".join(f"{s[0]}: {s[1]} passed, {s[2]} failed" for s in summary[-1:]),
                  "seconds": seconds},
                 indent=2))
EOF
write_json conformance.json < "$WORK/conformance.json"
log "conformance on $BACKEND: exit $conf_status ($(grep -o '"passed_on_backend": [0-9]*' "$OUT/conformance.json"))"

# ---- compare with PyTorch ----
WORKLOADS="${BENCH_WORKLOADS:-a,b,c,d}"
if [[ $CPU == 1 ]]; then
  REPS="${BENCH_REPS:-1}"
  WARMUP=0
else
  REPS="${BENCH_REPS:-5}"
  WARMUP=1
fi
compare() { # name, extra args...
  local name="$1"
  shift
  (cd "$ROOT" && "$DENO" run $CACHED_ONLY -A --no-check bench/compare.ts --json --backends "$BACKEND" \
    --workloads "$WORKLOADS" --reps "$REPS" --warmup "$WARMUP" --python "$PY" "$@") \
    > "$OUT/$name.jsonl.tmp" 2> "$OUT/$name.log"
  local status=$?
  if [[ $status == 0 ]]; then mv "$OUT/$name.jsonl.tmp" "$OUT/$name.jsonl"; else rm -f "$OUT/$name.jsonl.tmp"; fi
  return $status
}
compare_status=0
compare compare_fp32 || compare_status=$?
log "compare fp32: exit $compare_status"
bf16_status=skipped
if [[ $CPU == 0 ]]; then
  if "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_bf16_supported() else 1)'; then
    bf16_status=0
    compare compare_bf16 --autocast bfloat16 || bf16_status=$?
  fi
  log "compare bf16: $bf16_status"
fi

# ---- data parallel over every GPU (NCCL) ----
nccl_status=skipped
if [[ $CPU == 0 ]]; then
  NGPU="$("$PY" -c 'import torch; print(torch.cuda.device_count())')"
  if [[ "$NGPU" -ge 2 ]]; then
    set +e
    (cd "$ROOT" && DENO_DIFFUSION_TORCH_PYTHON="$PY" "$DENO" run $CACHED_ONLY -A --no-check \
      bench/distributed.ts --json --gpus "$NGPU") > "$OUT/distributed.json.tmp" 2> "$OUT/distributed.log"
    nccl_status=$?
    set -e
    if [[ $nccl_status == 0 ]]; then mv "$OUT/distributed.json.tmp" "$OUT/distributed.json"; else rm -f "$OUT/distributed.json.tmp"; fi
  fi
  log "nccl over ${NGPU} GPUs: $nccl_status"
fi

total=$(( $(date +%s) - STARTED ))
"$PY" - "$OUT" "$conf_status" "$compare_status" "$bf16_status" "$total" "$CPU" "$nccl_status" \
  > "$WORK/summary.json" <<'EOF'
import json, os, sys
out, conf, cmp, bf16, total, cpu, nccl = sys.argv[1:]
rows = {}
for name in ("compare_fp32", "compare_bf16"):
    path = os.path.join(out, name + ".jsonl")
    if os.path.exists(path):
        rows[name] = [json.loads(l) for l in open(path) if l.strip()]
dist = os.path.join(out, "distributed.json")
if os.path.exists(dist):
    rows["distributed_nccl"] = json.load(open(dist))
ok = conf == "0" and cmp == "0" and bf16 in ("0", "skipped") and nccl in ("0", "skipped")
print(json.dumps({"ok": ok, "mode": "cpu" if cpu == "1" else "gpu", "conformance_exit": int(conf),
                  "compare_fp32_exit": int(cmp), "compare_bf16": bf16, "nccl": nccl,
                  "seconds": int(total),
                  "rows": rows}, indent=2))
EOF
write_json summary.json < "$WORK/summary.json"
log "done in ${total}s; results in $OUT"
[[ "$conf_status" == 0 && "$compare_status" == 0 && ( "$bf16_status" == 0 || "$bf16_status" == skipped ) \
  && ( "$nccl_status" == 0 || "$nccl_status" == skipped ) ]]
