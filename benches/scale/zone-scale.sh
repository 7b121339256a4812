#!/usr/bin/env bash
# zone-scale.sh [RECORDS]: load a RECORDS-record zone (default 1,000,000) into dataplane dns and
# into Knot DNS, one after the other on the same file, and report for each: seconds from start
# until it answers, resident memory (VmRSS and VmHWM) once loaded, and bytes per record.
# Needs: a release build (cargo build --release), knotd (../../shared/bench/dns/install-peers.sh), dig.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BENCH=${BENCH:-$ROOT/../shared/bench/dns}
RECORDS=${RECORDS:-${1:-1000000}}
WORK=${WORK:-/tmp/zone-scale}
# Fresh ports each run: with SO_REUSEPORT a server still exiting could answer for a new one.
PORT_OURS=${PORT_OURS:-$((20000 + RANDOM % 20000))} PORT_KNOT=${PORT_KNOT:-$((40000 + RANDOM % 20000))}
mkdir -p "$WORK"
ZONE="$WORK/cluster.local.zone"
[ -s "$ZONE" ] || python3 "$HERE/gen-big-zone.py" "$RECORDS" "$ZONE"
PROBE=svc0.ns0.svc.cluster.local

wait_answer() { # PORT START_NS -> prints seconds until svc0 answers
  local port=$1 start=$2
  for _ in $(seq 1 1200); do
    if dig @127.0.0.1 -p "$port" +short +time=1 +tries=1 "$PROBE" A 2>/dev/null | grep -q '^10\.'; then
      echo "scale=2; ($(date +%s%N) - $start) / 1000000000" | bc; return 0
    fi
    sleep 0.05
  done
  echo "timeout"; return 1
}

mem() { # PID -> "rss_mib hwm_mib"
  awk '/VmRSS/{r=$2} /VmHWM/{h=$2} END{printf "%.1f %.1f\n", r/1024, h/1024}' "/proc/$1/status"
}

report() { # NAME SECONDS PID
  read -r rss hwm < <(mem "$3")
  local per=$(echo "scale=1; $rss * 1048576 / $RECORDS" | bc)
  printf "| %-14s | %9s | %8s | %8s | %8s |\n" "$1" "$2" "$rss" "$hwm" "$per"
}

echo "zone: $ZONE ($RECORDS records, $(du -m "$ZONE" | cut -f1) MiB of text)"
printf "| %-14s | %9s | %8s | %8s | %8s |\n" server "load s" "RSS MiB" "HWM MiB" "B/record"
echo "|---|---|---|---|---|"

start=$(date +%s%N)
"${DATAPLANE:-$ROOT/target/release/dataplane}" --log-level warn dns --listen 127.0.0.1:$PORT_OURS --zone-file "$ZONE" \
  --workers 1 --metrics-listen 127.0.0.1:0 &
OURS=$!
t=$(wait_answer $PORT_OURS "$start")
report "dataplane" "$t" $OURS
kill $OURS; wait $OURS 2>/dev/null || true

start=$(date +%s%N)
KNOT_PID=$(SERVER_CPUS= READY_TIMEOUT=600 RUNDIR="$WORK/knot" bash "$BENCH/run-server.sh" knot $PORT_KNOT "$ZONE" 2>"$WORK/knot.err" | tail -1)
t=$(wait_answer $PORT_KNOT "$start")
report "knot $(knotd --version | awk '{print $2}')" "$t" "$KNOT_PID"
bash "$BENCH/stop-server.sh" "$KNOT_PID" >/dev/null 2>&1 || true
