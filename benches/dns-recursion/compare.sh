#!/usr/bin/env bash
# compare.sh: cache-hit queries per server CPU-second, dataplane's resolver vs Unbound.
#
# Both resolvers forward every name to one dataplane authoritative server that serves the
# shared harness's cluster.local zone, so they resolve exactly the same data. Each resolver
# runs alone, pinned to CPU 1, one worker/thread; the harness's measure.sh warms it up (which
# fills the cache: the query file loops many times) and then loads it with dnsperf on CPU 0.
# The authoritative server is idle once the caches are warm.
# IO=uring runs ours on its io_uring backend (default: recvmmsg/sendmmsg).
# Needs: a release build, ../../../shared/bench/dns (install-peers.sh: unbound, dnsperf).
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BENCH=${BENCH:-$ROOT/../shared/bench/dns}
BIN=${DATAPLANE:-$ROOT/target/release/dataplane}
WORK=${WORK:-/tmp/dns-recursion-bench}
ROUNDS=${ROUNDS:-2}
IO=${IO:-mmsg}
export DURATION=${DURATION:-15} WARMUP=${WARMUP:-5}
mkdir -p "$WORK"
DATA="$WORK/data"
[ -s "$DATA/cluster.local.zone" ] || python3 "$BENCH/gen-zone.py" -n "${N:-10000}" --out "$DATA" >/dev/null
PA=$((30000 + RANDOM % 10000)) PR=$((40000 + RANDOM % 10000))

"$BIN" --log-level warn dns --listen 127.0.0.1:$PA --zone-file "$DATA/cluster.local.zone" --workers 1 \
  --metrics-listen 127.0.0.1:0 & AUTH=$!
trap 'kill $AUTH 2>/dev/null || true' EXIT
sleep 1

start_ours() {
  taskset -c 1 "$BIN" --log-level warn dns --listen 127.0.0.1:$PR --workers 1 --metrics-listen 127.0.0.1:0 \
    --io "$IO" --recursion forward --forward ".=127.0.0.1:$PA" --allow-recursion 127.0.0.0/8 >/dev/null 2>&1 &
  RPID=$!
}

. "$(dirname "$0")/unbound.sh"

start_unbound() {
  unbound_conf 127.0.0.1 "$PR" 127.0.0.0/8 "$WORK" 127.0.0.1 "$PA" > "$WORK/unbound.conf"
  taskset -c 1 unbound -d -c "$WORK/unbound.conf" >/dev/null 2>&1 &
  RPID=$!
}

wait_ready() {
  for _ in $(seq 1 100); do
    dig @127.0.0.1 -p $PR +time=1 +tries=1 "$(head -1 "$DATA/queries.txt" | cut -d' ' -f1)" 2>/dev/null | grep -q "status: NOERROR" && return 0
    sleep 0.1
  done
  echo "resolver on $PR did not answer" >&2; return 1
}

printf "%-10s %5s %10s %10s %12s %8s  %s\n" resolver round QPS "lost%" "q/CPU-s" "RSS MiB" rcodes
for round in $(seq 1 "$ROUNDS"); do
  for name in dataplane unbound; do
    if [ $name = dataplane ]; then start_ours; else start_unbound; fi
    pid=$RPID
    wait_ready
    json=$(CLIENT_CPUS=0 bash "$BENCH/measure.sh" "$pid" $PR "$DATA/queries.txt" 2>"$WORK/measure-$name.err" | tail -1)
    json=${json#JSON }
    kill "$pid"; wait "$pid" 2>/dev/null || true
    python3 - "$name" "$round" "$json" <<'PY'
import json, sys
name, rnd, j = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
print("%-10s %5s %10.0f %10.2f %12.0f %8.1f  %s" % (name, rnd, j["qps"], j.get("lost_pct", 0), j["q_per_cpu_s"], j.get("rss_hwm_kb", 0) / 1024, j.get("rcodes", "")))
PY
  done
done
