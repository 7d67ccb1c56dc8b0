# Shared environment for the project's scripts (sourced).
export PATH="$HOME/.cargo/bin:$PATH"
# Builds are kept outside the clone so repeated runs on the same machine reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/xray-web-target}"
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner
export CHROMEDRIVER="${CHROMEDRIVER:-/usr/bin/chromedriver}"
export WASM_BINDGEN_TEST_TIMEOUT="${WASM_BINDGEN_TEST_TIMEOUT:-600}"
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d /tmp/xdg-XXXXXX)}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export AXE_JS="${AXE_JS:-${XRAY_TOOLS_DIR:-/var/tmp/xray-web-tools}/axe-core-4.10.3/axe.min.js}"
