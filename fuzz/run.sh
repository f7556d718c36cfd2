#!/usr/bin/env bash
# Runs every fuzz target for SECONDS each (default 30), on the stable toolchain.
#
#   fuzz/run.sh [SECONDS]
#
# cargo-fuzz needs nightly only for its sanitizers (`-Zsanitizer=...`). Liaison's own crates
# forbid `unsafe`, so the targets build with `--sanitizer none`: the code is still instrumented
# for coverage (`-Cpasses=sancov-module`, stable) and built with debug assertions and overflow
# checks, so libFuzzer finds panics, overflows, hangs and memory blow-ups. Install the tool with
# `cargo install --locked cargo-fuzz`.
#
# The targets are built once, then run as plain libFuzzer binaries, FUZZ_JOBS at a time (default:
# the number of cores). Each starts from its corpus, fuzz/corpus/TARGET: the committed seeds
# (seed-*: real encodings, written by protocol/tests/fuzz_seeds.rs) and what earlier runs added
# (kept between runs, not committed). A crash is saved in fuzz/artifacts/TARGET and fails the
# script. Prints the executions reached.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-30}"
case "$secs" in
  ''|*[!0-9]*) echo "usage: fuzz/run.sh [SECONDS]" >&2; exit 2 ;;
esac
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: cargo install --locked cargo-fuzz" >&2
  exit 2
fi

cargo fuzz build --sanitizer none
triple="$(rustc -vV | sed -n 's/^host: //p')"
target_dir="${CARGO_TARGET_DIR:-target}"
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
bin_dir="$target_dir/$triple/release"
jobs="${FUZZ_JOBS:-$(nproc)}"
logs="$(mktemp -d)"
trap 'rm -rf "$logs"' EXIT

run_one() {
  local target="$1"
  mkdir -p "corpus/$target" "artifacts/$target"
  if "$bin_dir/$target" "corpus/$target" -artifact_prefix="artifacts/$target/" \
      -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
      >"$logs/$target" 2>&1; then
    local runs
    runs="$(grep -oE 'Done [0-9]+ runs' "$logs/$target" | tail -1 | grep -oE '[0-9]+' || echo '?')"
    printf 'fuzz %-11s %10s executions in %ss, corpus %s inputs\n' \
      "$target" "$runs" "$secs" "$(find "corpus/$target" -type f | wc -l)"
  else
    tail -40 "$logs/$target"
    echo "fuzz target $target FAILED: reproducer in fuzz/artifacts/$target" >&2
    return 1
  fi
}

status=0
running=0
for target in $(cargo fuzz list); do
  run_one "$target" &
  running=$((running + 1))
  if [ "$running" -ge "$jobs" ]; then
    wait -n || status=1
    running=$((running - 1))
  fi
done
while [ "$running" -gt 0 ]; do
  wait -n || status=1
  running=$((running - 1))
done
exit "$status"
