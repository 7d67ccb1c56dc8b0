#!/usr/bin/env bash
# Builds one more module of the app beside the page's plain one (`xray-web`, which trunk builds),
# for trunk's post-build hook (scripts/post-build.sh):
#
#   module.sh NAME FEATURES
#
# the same crate with cargo FEATURES, bound by wasm-bindgen as `NAME.js` and `NAME_bg.wasm`:
# - `xray-web-gpu` (`webgpu`): Burn's WebGPU backend; the inference worker loads it when the page
#   runs on WebGPU, the training worker when it trains on WebGPU, and a page on the CPU never
#   downloads it.
# - `xray-web-fma` (`relaxed-simd`): the page's module with the CPU kernels' multiply-adds fused
#   by WebAssembly's relaxed SIMD; public/boot.js loads it instead of `xray-web` where the
#   browser validates relaxed SIMD, and the workers follow the page.
#
# Each in its own target folder (NAME inside the usual one): the feature sets then never
# overwrite each other's `xray_web.wasm`, which trunk reads from the shared output path.
set -euo pipefail
name="${1:?module.sh NAME FEATURES}"
features="${2:?module.sh NAME FEATURES}"
staging="${TRUNK_STAGING_DIR:?run by trunk}"
root="${TRUNK_SOURCE_DIR:-$(cd "$(dirname "$0")/.." && pwd)}"
cd "$root"
case "${TRUNK_PROFILE:-release}" in
  release) profile=wasm-release ;;
  *) profile=dev ;;
esac
target="${CARGO_TARGET_DIR:-$root/target}/$name"
wasm=$(CARGO_TARGET_DIR="$target" cargo build --lib --target wasm32-unknown-unknown \
  --profile "$profile" --features "$features" --message-format=json-render-diagnostics |
  grep -o '"filenames":\[[^]]*\]' | grep -o '[^"]*/xray_web\.wasm' | tail -1)
[ -f "$wasm" ] || { echo "module.sh: cargo gave no xray_web.wasm for $name" >&2; exit 1; }
wasm-bindgen --target web --no-typescript --out-dir "$staging" --out-name "$name" "$wasm"
