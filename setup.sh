#!/usr/bin/env bash
# Installs what deno-diffusion needs on a fresh Debian machine and builds the native shim.
# Safe to run again: each step is skipped when already done.
#   deno 2.9.6 (from the npm registry), libtorch 1.13 CPU + OpenBLAS + gloo headers (Debian),
#   python3-torch (Debian; only the test fixtures and the PyTorch peer benchmark use it),
#   libturbojpeg0 (Debian; JPEG decoded exactly as PIL does, else a pure-JS approximation),
#   mesa-vulkan-drivers (Debian; lavapipe, a software Vulkan: WebGPU gets an adapter to probe).
#   chromium (Debian; the web tests drive it headless).
set -euo pipefail
cd "$(dirname "$0")"

if ! command -v deno >/dev/null 2>&1; then
  echo "setup: installing deno 2.9.6 from the npm registry"
  npm install -g deno@2.9.6 >/dev/null
fi

missing=()
[ -f /usr/include/torch/csrc/api/include/torch/version.h ] || [ -n "${LIBTORCH:-}" ] || missing+=(libtorch-dev)
dpkg -s libopenblas0-pthread >/dev/null 2>&1 || missing+=(libopenblas0-pthread)
dpkg -s libturbojpeg0 >/dev/null 2>&1 || missing+=(libturbojpeg0)
# gloo's headers: c10d's ProcessGroupGloo (data-parallel training on CPU) compiles against them.
if [ -z "${LIBTORCH:-}" ] && [ ! -f /usr/include/gloo/config.h ]; then missing+=(libgloo-dev); fi
dpkg -s mesa-vulkan-drivers >/dev/null 2>&1 || missing+=(mesa-vulkan-drivers)
# Headless Chromium (with SwiftShader WebGL) for the dashboard and browser-sampling tests.
if [ "${DENO_DIFFUSION_SKIP_BROWSER:-0}" != 1 ]; then
  [ -x /usr/bin/chromium ] || missing+=(chromium)
fi
if [ "${DENO_DIFFUSION_SKIP_PYTHON:-0}" != 1 ]; then
  /usr/bin/python3 -c "import torch" >/dev/null 2>&1 || missing+=(python3-torch)
fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]} (Debian)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${missing[@]}" >/dev/null
fi

echo "setup: building the native shim"
deno task build:native
