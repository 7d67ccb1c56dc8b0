#!/usr/bin/env bash
# trunk post-build hook: builds the WebGPU workers' module, `xray-web-gpu.js` and
# `xray-web-gpu_bg.wasm`, beside the page's own (`xray-web`, which trunk builds without Burn's
# WebGPU backend). It is the same crate with the `webgpu` feature; the inference worker loads it
# when the page runs on WebGPU, the training worker when it trains on WebGPU, and a page on the
# CPU never downloads it.
#
# Its own target folder (`gpu-module` inside the usual one): the two feature sets then never
# overwrite each other's `xray_web.wasm`, which trunk reads from the shared output path.
set -euo pipefail
staging="${TRUNK_STAGING_DIR:?run by trunk}"
root="${TRUNK_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$root"
case "${TRUNK_PROFILE:-release}" in
  release) profile=wasm-release ;;
  *) profile=dev ;;
esac
target="${CARGO_TARGET_DIR:-$root/target}/gpu-module"
wasm=$(CARGO_TARGET_DIR="$target" cargo build --lib --target wasm32-unknown-unknown \
  --profile "$profile" --features webgpu --message-format=json-render-diagnostics |
  grep -o '"filenames":\[[^]]*\]' | grep -o '[^"]*/xray_web\.wasm' | tail -1)
[ -f "$wasm" ] || { echo "gpu-module.sh: cargo gave no xray_web.wasm" >&2; exit 1; }
wasm-bindgen --target web --no-typescript --out-dir "$staging" --out-name xray-web-gpu "$wasm"
