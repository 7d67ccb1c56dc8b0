#!/usr/bin/env bash
# Runs every fuzz target (fuzz/fuzz_targets/) with AddressSanitizer and a malloc limit at the
# input path's memory budget, MINUTES minutes each (default 10), one after another, and prints
# executions, coverage and findings per target. Findings are left in fuzz/artifacts/<target>/;
# each becomes a file under tests/fuzz/ checked by tests/fuzz_regressions.rs.
#
#   bash scripts/fuzz.sh [MINUTES] [TARGET...]
#
# Needs the nightly toolchain and cargo-fuzz (installed here if missing). Exits non-zero if any
# target found something.
set -euo pipefail
cd "$(dirname "$0")/.."
source .ci/env.sh
minutes=${1:-10}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(decode weights card protocol dataset)

# The budget (README: Robustness): decoding one file may allocate at most the larger of 64 MB
# and 1.5x what its accepted pixels need (60 MP x 2 bytes at most: 180 MB); a weights file, a
# card or a worker message, 64 MB. libFuzzer's -malloc_limit_mb stops at any single allocation
# above it; -rss_limit_mb bounds the whole process (AddressSanitizer's shadow memory included).
limit() {
  case $1 in
    decode | dataset) echo 192 ;;
    *) echo 64 ;;
  esac
}

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
cargo +nightly fuzz --version > /dev/null 2>&1 || cargo install cargo-fuzz --locked

# Seeds: the input corpus (decode) and the multi-part seeds, both made by the tests.
cargo test --release --quiet --test inputs -- --ignored write_fuzz_seeds > /dev/null
cargo test --release --quiet --test fuzz_seeds -- --ignored write_fuzz_seeds > /dev/null

export CARGO_TARGET_DIR=${FUZZ_TARGET_DIR:-/var/tmp/xray-web-fuzz}
logs=fuzz/logs
mkdir -p "$logs"
summary=()
found=0
for t in "${targets[@]}"; do
  corpus=fuzz/corpus/$t
  mkdir -p "$corpus" "fuzz/artifacts/$t"
  extra=()
  [ "$t" = decode ] && extra=(tests/fuzz tests/corpus)
  before=$(find "fuzz/artifacts/$t" -type f | wc -l)
  echo "== $t: $minutes min, malloc limit $(limit "$t") MB"
  (cd fuzz && cargo +nightly fuzz build -O -s address "$t") > "$logs/$t.build.log" 2>&1
  set +e
  (cd fuzz && cargo +nightly fuzz run -O -s address "$t" "../$corpus" \
    "${extra[@]/#/../}" -- \
    -max_total_time=$((minutes * 60)) -malloc_limit_mb="$(limit "$t")" -rss_limit_mb=2048 \
    -timeout=30 -print_final_stats=1 -artifact_prefix="artifacts/$t/") > "$logs/$t.log" 2>&1
  rc=$?
  set -e
  after=$(find "fuzz/artifacts/$t" -type f | wc -l)
  # libFuzzer's last words: "Done N runs in S second(s)"; coverage from its last status line.
  done_line=$(grep -E '^Done [0-9]+ runs in [0-9]+ second' "$logs/$t.log" | tail -1 || true)
  execs=$(echo "$done_line" | awk '{print $2}')
  secs=$(echo "$done_line" | awk '{print $5}')
  cov=$(grep -o 'cov: [0-9]*' "$logs/$t.log" | tail -1 | grep -o '[0-9]*' || true)
  new=$((after - before))
  [ "$rc" -eq 0 ] && [ "$new" -eq 0 ] || found=1
  summary+=("$(printf '%-9s %10s execs %6s s  cov %6s  findings %s  (exit %s)' \
    "$t" "${execs:-?}" "${secs:-?}" "${cov:-?}" "$new" "$rc")")
done
echo
echo "target         executions     time  coverage"
printf '%s\n' "${summary[@]}"
exit $found
