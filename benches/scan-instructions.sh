#!/usr/bin/env bash
# Instructions the scanner executes per byte of each generated input
# (benches/support/inputs.rs), standard detectors: valgrind counts the
# instructions of Scanner::scan over 10 and over 20 passes, and the
# difference divided by 10 passes is the steady state (no warm-up, no
# one-time compilation of phone patterns). Deterministic: two builds
# compare on a machine whose speed changes.
#
#   benches/scan-instructions.sh [INPUT...]    # default: all four
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "scan-instructions: valgrind is not installed (apt install valgrind)" >&2; exit 1; }
bin=$(cargo bench --bench scan_instructions --no-run --message-format=json 2>/dev/null \
  | python3 -c 'import json,sys
for l in sys.stdin:
    m=json.loads(l)
    if m.get("reason")=="compiler-artifact" and m["target"]["name"]=="scan_instructions" and m.get("executable"): print(m["executable"])')
[ -n "$bin" ] || { echo "scan-instructions: the benchmark did not build" >&2; exit 1; }
count() {
  valgrind --tool=callgrind --callgrind-out-file=/dev/null \
    --toggle-collect='airlock::mask::scan::Scanner::scan' "$bin" "$1" "$2" 2>&1 >/dev/null \
    | awk '/Collected/ {print $4}'
}
inputs=("$@")
[ ${#inputs[@]} -gt 0 ] || inputs=(prose table_data names digit_groups)
echo "build $(git rev-parse --short HEAD)$(git diff --quiet || echo '+changes')"
for input in "${inputs[@]}"; do
  bytes=$("$bin" "$input" 0 | awk '{print $1}')
  ten=$(count "$input" 10)
  twenty=$(count "$input" 20)
  awk -v i="$input" -v a="$ten" -v b="$twenty" -v n="$bytes" \
    'BEGIN { printf "%-13s %6.1f instructions/byte\n", i, (b - a) / 10 / n }'
done
