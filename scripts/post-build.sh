#!/usr/bin/env bash
# trunk's post-build hook. trunk starts the hooks of one stage at the same time, so the steps
# that depend on each other run here, in order: the two more modules (the WebGPU workers' and
# the page's with relaxed SIMD) first, then the service worker's list of every built file (which
# must include them).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/module.sh" xray-web-gpu webgpu
bash "$here/module.sh" xray-web-fma relaxed-simd
bash "$here/service-worker.sh"
