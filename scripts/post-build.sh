#!/usr/bin/env bash
# trunk's post-build hook. trunk starts the hooks of one stage at the same time, so the steps
# that depend on each other run here, in order: the WebGPU module first, then the service
# worker's list of every built file (which must include that module).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
bash "$here/gpu-module.sh"
bash "$here/service-worker.sh"
