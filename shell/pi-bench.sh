#!/usr/bin/env bash
# Benchmark an exported student on a remote machine (a Raspberry Pi) over SSH,
# with the torch-free edge runtime there, and the same problems locally.
#
#   make pi-bench PI=pi@raspberrypi MODEL=runs/onnx/int8 PROBLEMS=valid.jsonl
#   shell/pi-bench.sh PI MODEL PROBLEMS [OUT]
#
# Copies MODEL (an ONNX variant directory) and PROBLEMS to PI:$PI_DIR, runs
# `pdc bench` there (the Pi needs `pip install 'pdc[edge]'`; $PI_PDC names the
# command, default `pdc`), brings its JSONL back and writes, in OUT
# (default runs/pi-bench-<time>):
#   local.jsonl    pdc bench on this machine
#   remote.jsonl   pdc bench on PI (same model, problems and options)
#   summary.jsonl  the two summary records, each with "host"
# Environment: PI_DIR (remote work directory, default pdc-pi-bench), PI_PDC,
# SSH_OPTS (extra ssh/scp options, e.g. "-o Port=2222 -i key"), BENCH_OPTS
# (extra pdc bench options, default "--limit 20"), PDC (local command, default pdc).
set -euo pipefail

PI=${1:?usage: pi-bench.sh user@host MODEL PROBLEMS [OUT]}
MODEL=${2:?usage: pi-bench.sh user@host MODEL PROBLEMS [OUT]}
PROBLEMS=${3:?usage: pi-bench.sh user@host MODEL PROBLEMS [OUT]}
OUT=${4:-runs/pi-bench-$(date +%Y%m%d-%H%M%S)}
PI_DIR=${PI_DIR:-pdc-pi-bench}
PI_PDC=${PI_PDC:-pdc}
PDC=${PDC:-pdc}
BENCH_OPTS=${BENCH_OPTS:---limit 20}
SSH_OPTS=${SSH_OPTS:-}
# shellcheck disable=SC2206
SSH=(ssh -o BatchMode=yes $SSH_OPTS)
# shellcheck disable=SC2206
SCP=(scp -q -o BatchMode=yes $SSH_OPTS)

ls "$MODEL"/*.onnx > /dev/null 2>&1 || { echo "Error: no *.onnx files in $MODEL, name an export variant (OUT/int8 or OUT/fp32)" >&2; exit 1; }
[ -f "$PROBLEMS" ] || { echo "Error: cannot read problems file $PROBLEMS" >&2; exit 1; }
mkdir -p "$OUT"

echo "pi-bench: local pdc bench on $MODEL" >&2
# shellcheck disable=SC2086
$PDC bench --model "$MODEL" $BENCH_OPTS < "$PROBLEMS" > "$OUT/local.jsonl"

echo "pi-bench: copying $MODEL and $PROBLEMS to $PI:$PI_DIR" >&2
"${SSH[@]}" "$PI" "rm -rf '$PI_DIR/model' && mkdir -p '$PI_DIR'"
"${SCP[@]}" -r "$MODEL" "$PI:$PI_DIR/model"
"${SCP[@]}" "$PROBLEMS" "$PI:$PI_DIR/problems.jsonl"

echo "pi-bench: pdc bench on $PI" >&2
"${SSH[@]}" "$PI" "cd '$PI_DIR' && $PI_PDC bench --model model $BENCH_OPTS < problems.jsonl > remote.jsonl"
"${SCP[@]}" "$PI:$PI_DIR/remote.jsonl" "$OUT/remote.jsonl"

{
  tail -n 1 "$OUT/local.jsonl" | sed 's/^{/{"host": "local", /'
  tail -n 1 "$OUT/remote.jsonl" | sed "s/^{/{\"host\": \"$PI\", /"
} > "$OUT/summary.jsonl"
cat "$OUT/summary.jsonl"
echo "pi-bench: wrote $OUT (local.jsonl, remote.jsonl, summary.jsonl)" >&2
