#!/usr/bin/env bash
# xdp.sh: recursive resolvers' cache hits per server CPU-second over a veth pair, in one run:
# `dataplane dns --recursion` over AF_XDP (`--io xdp`), the same over UDP sockets
# (recvmmsg/sendmmsg), and Unbound (Debian; UDP sockets, it has no XDP mode); the same query
# mix, warm caches, one worker/thread each, kxdpgun (Knot's AF_XDP load generator) as the
# client. Not a test: it prints a table.
#
#   cargo build --release -p dataplane && sudo benches/dns-recursion/xdp.sh
#   DURATION=8 ROUNDS=2 RATES="20000 50000 400000" CASES="ours-xdp unbound" benches/dns-recursion/xdp.sh
#   PERF=1 RATES=50000 ...   also records `perf record -C SERVER_CPU -g` per run into OUT
#
# The topology and the CPU accounting are those of ../dns-xdp/compare.sh (read its header):
#
#   netns C: vc0 192.0.2.2/24  ══ veth ══  netns S: vs0 192.0.2.1/24  resolver, port 53
#                                                   lo 127.0.0.1:5301   authoritative server
#
# The resolvers forward everything to one `dataplane dns` authoritative server for the shared
# harness's cluster.local zone (gen-zone.py, N=10000, seed 1: 80 % A, 5 % AAAA NODATA, 5 % SRV,
# 10 % NXDOMAIN, the query file compare.sh uses), on the server namespace's loopback and pinned
# to the client's CPU (it is idle once the caches are warm). The zone's TTLs (30 s in the
# harness) are raised to 3600 s in our copy, SOA minimum included, so that nothing expires
# during a run: every measured query is a cache hit (ours' hit/miss counters are printed as a
# check). Before each measured run, kxdpgun sends the whole query file WARM_PASSES times at
# WARM_RATE q/s, unmeasured: the first pass fills the cache, the rest are hits.
#
# CPUs (2 cores): the resolver is pinned to CPU 1, kxdpgun to CPU 0; both veths use threaded
# NAPI, vs0's kthread pinned to CPU 1, so the server's receive work (the XDP program and the
# copy into the UMEM, or the kernel's whole UDP receive path) runs on the server's core.
# "CPU-s" is, for every resolver alike, the process's utime + stime, all threads ("proc-s",
# /proc/PID/stat; its transmit work, kernel included, runs in its own system calls), plus the
# CPU time of vs0's NAPI kthreads ("rx-s"). q/CPU-s = answers kxdpgun received / CPU-s. CPU 1's
# busy time from /proc/stat is shown as a cross-check ("cpu1-s"; other work on a shared machine
# inflates it). One table per offered rate (kxdpgun -Q, open loop): below every resolver's
# capacity (the cost per query) and far above it (the server core saturated).
#
# Needs root, iproute2, ethtool, unbound, kxdpgun (knot-dnsutils), dig, curl, python3.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release/dataplane}
DURATION=${DURATION:-10}
RATES=${RATES:-${RATE:-20000 50000 400000}}
ROUNDS=${ROUNDS:-1}
CASES=${CASES:-"ours-xdp ours-udp unbound"}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
WARM_RATE=${WARM_RATE:-25000}
WARM_PASSES=${WARM_PASSES:-2}
BENCH=${BENCH:-/work/shared/bench/dns}
OUT=${OUT:-/tmp/dns-recursion-xdp.$$}
HZ=$(getconf CLK_TCK)
S=drx$$-s C=drx$$-c SIP=192.0.2.1 CIP=192.0.2.2 PORT=53 UPSTREAM=127.0.0.1:5301
METRICS=127.0.0.1:9153
server_pid="" auth_pid=""

[ "$(id -u)" -eq 0 ] || { echo "xdp.sh: needs root (namespaces, XDP)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "xdp.sh: build first: cargo build --release -p dataplane" >&2; exit 1; }
for c in ip ethtool unbound kxdpgun dig curl taskset python3; do
  command -v $c >/dev/null || { echo "xdp.sh: $c is missing ($BENCH/install-peers.sh)" >&2; exit 1; }
done
mkdir -p "$OUT/data"
DATA=$OUT/data
(cd "$DATA" && python3 "$BENCH/gen-zone.py" -n 10000 --seed 1 --queries 100000 >/dev/null) || exit 1
# TTL 30 -> 3600 on every record (the TTL column) and in the SOA's MINIMUM (negative TTL).
python3 - "$DATA/cluster.local.zone" <<'EOF'
import re, sys
path = sys.argv[1]
out = []
for line in open(path):
    if line.startswith("$TTL"):
        line = "$TTL 3600\n"
    elif not line.startswith(";"):
        f = line.split()
        if len(f) > 3 and f[1] == "30" and f[2] == "IN":
            f[1] = "3600"
            if f[3] == "SOA":
                f[-1] = "3600"
            line = " ".join(f) + "\n"
    out.append(line)
open(path, "w").writelines(out)
EOF
ZONE=$DATA/cluster.local.zone QFILE=$DATA/queries.txt
NQ=$(wc -l < "$QFILE")
WARM_SECS=$(( (NQ * WARM_PASSES + WARM_RATE - 1) / WARM_RATE ))

stop_pid() {  # $1 = pid
  kill "$1" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$1" 2>/dev/null
  wait "$1" 2>/dev/null
}
stop_server() {
  [[ -n "$server_pid" ]] && stop_pid "$server_pid"
  [[ -n "$auth_pid" ]] && stop_pid "$auth_pid"
  server_pid="" auth_pid=""
}
. "$(dirname "$0")/../dns-xdp/veth.sh"
trap teardown EXIT

. "$(dirname "$0")/unbound.sh"

start_server() {  # $1 = case
  local d="$OUT/$1" cmd
  rm -rf "$d"; mkdir -p "$d"
  ip netns exec $S taskset -c "$CLIENT_CPU" "$BIN" --log-level warn dns --listen "$UPSTREAM" \
    --zone-file "$ZONE" --workers 1 --metrics-listen 127.0.0.1:0 > "$d/auth.log" 2>&1 &
  auth_pid=$!
  local ours=("$BIN" --log-level warn dns --listen "$SIP:$PORT" --workers 1
              --metrics-listen "$METRICS" --recursion forward --forward ".=$UPSTREAM"
              --allow-recursion 192.0.2.0/24)
  case $1 in
    ours-xdp) cmd=("${ours[@]}" --io xdp --xdp-interface vs0) ;;
    ours-udp) cmd=("${ours[@]}" --io mmsg) ;;
    unbound) unbound_conf "$SIP" "$PORT" 192.0.2.0/24 "$d" "${UPSTREAM%:*}" "${UPSTREAM#*:}" \
               "so-rcvbuf: 4m" "so-sndbuf: 4m" > "$d/unbound.conf"
              cmd=(unbound -d -c "$d/unbound.conf") ;;
    *) echo "unknown case $1" >&2; return 1 ;;
  esac
  ip netns exec $S taskset -c "$SERVER_CPU" "${cmd[@]}" > "$d/log" 2>&1 &
  server_pid=$!
  # A correctness probe from the client side (the first answer is a miss, resolved upstream).
  local name type
  name=$(awk 'NR == 1 { print $1 }' "$QFILE") type=$(awk 'NR == 1 { print $2 }' "$QFILE")
  for _ in $(seq 100); do
    ip netns exec $C dig +time=1 +tries=1 -p $PORT @$SIP "$name" "$type" > "$d/probe.txt" 2>&1
    grep -q 'status: NOERROR' "$d/probe.txt" && break
    sleep 0.2
  done
  taskset -a -pc "$SERVER_CPU" "$server_pid" >/dev/null 2>&1
  kill -0 "$server_pid" 2>/dev/null || { echo "$1 died:"; cat "$d/log"; return 1; }
  grep -q 'status: NOERROR' "$d/probe.txt" || { echo "$1: probe failed"; cat "$d/probe.txt"; return 1; }
  pin_napi > "$d/napi.txt"
  grep -q 'napi/vs0-' "$d/napi.txt" || { echo "$1: no NAPI kthread on vs0"; return 1; }
}

lookups() {  # ours' cache lookups "hit miss" (0 0 for Unbound)
  ip netns exec $S curl -s "http://$METRICS/metrics" 2>/dev/null | awk '
    /^dns_recursion_cache_lookups_total\{result="hit"\}/ { h = $2 }
    /^dns_recursion_cache_lookups_total\{result="(miss|expired)"\}/ { m += $2 }
    END { printf "%d %d\n", h, m }'
}

RESULTS=$OUT/results.tsv
run_case() {  # $1 = case, $2 = round, $3 = rate
  local name=$1 log="$OUT/$1-r$2-q$3.kxdpgun.txt" t0 t1 n0 n1 b0 b1 l0 l1 ans
  setup || { echo "netns/veth setup failed" >&2; exit 1; }
  start_server "$name" || { stop_server; return; }
  ip netns exec $C kxdpgun -t "$WARM_SECS" -Q "$WARM_RATE" -F "${CLIENT_CPU}s1" -p $PORT \
    -i "$QFILE" -I vc0 $SIP > "$log.warm" 2>&1
  sleep 1
  l0=$(lookups)
  t0=$(ticks "$server_pid"); n0=$(napi_ticks); b0=$(busy "$SERVER_CPU")
  if [[ -n "${PERF:-}" ]]; then  # a profile of the server CPU (everything on it) meanwhile
    perf record -q -C "$SERVER_CPU" -g -o "$OUT/$1-r$2-q$3.perf.data" -- sleep "$DURATION" \
      > /dev/null 2>&1 &
  fi
  ip netns exec $C kxdpgun -t "$DURATION" -Q "$3" -F "${CLIENT_CPU}s1" -p $PORT \
    -i "$QFILE" -I vc0 $SIP > "$log" 2>&1
  t1=$(ticks "$server_pid"); n1=$(napi_ticks); b1=$(busy "$SERVER_CPU")
  l1=$(lookups)
  ans=$(awk '/total replies:/ { print $3; exit }' "$log")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$2" "${ans:-0}" \
    "$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')" \
    "$(awk -v a="$n0" -v b="$n1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')" \
    "$(awk -v a="$b0" -v b="$b1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')" \
    "$(awk '/total queries:/ { print $3; exit }' "$log")" \
    "$(( ${l1% *} - ${l0% *} ))" "$(( ${l1#* } - ${l0#* } ))" >> "$RESULTS.$3"
  stop_server
}

echo "kernel $(uname -r); $(unbound -V 2>&1 | head -1);" \
  "dataplane $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)+worktree;" \
  "${DURATION}s per run after ${WARM_SECS}s of warm-up, $ROUNDS round(s), kxdpgun -Q {$RATES}" \
  "on CPU $CLIENT_CPU, server on CPU $SERVER_CPU; load before: $(cut -d' ' -f1-3 /proc/loadavg)"
for q in $RATES; do : > "$RESULTS.$q"; done
for r in $(seq "$ROUNDS"); do
  for q in $RATES; do
    for c in $CASES; do run_case "$c" "$r" "$q"; done
  done
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg); raw output: $OUT"
for q in $RATES; do
echo
echo "== kxdpgun -Q $q (offered queries/s)"
python3 - "$RESULTS.$q" "$DURATION" <<'EOF'
import sys, collections
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
dur = float(sys.argv[2])
agg = collections.OrderedDict()
for name, rnd, ans, proc, rx, cpu1, sent, hits, misses in rows:
    a = agg.setdefault(name, {"ans": 0, "proc": 0.0, "rx": 0.0, "cpu1": 0.0, "sent": 0,
                              "hits": 0, "misses": 0, "n": 0, "q": []})
    a["ans"] += int(ans); a["proc"] += float(proc); a["rx"] += float(rx); a["cpu1"] += float(cpu1)
    a["sent"] += int(sent or 0); a["hits"] += int(hits); a["misses"] += int(misses); a["n"] += 1
    total = float(proc) + float(rx)
    a["q"].append(int(ans) / total if total > 0 else 0)
print(f"{'case':<9} {'sent/s':>9} {'answered/s':>11} {'proc-s':>7} {'rx-s':>6} {'CPU-s':>6} "
      f"{'cpu1-s':>7} {'q/CPU-s':>9}  {'hits':>9} {'misses':>6}  range")
base = {}
for name, a in agg.items():
    n = a["n"]
    cpu = a["proc"] + a["rx"]
    base[name] = a["ans"] / cpu if cpu else 0
    rng = f"{min(a['q']):,.0f}-{max(a['q']):,.0f}" if n > 1 else ""
    hm = (f"{a['hits']:>9} {a['misses']:>6}" if name.startswith("ours")
          else f"{'-':>9} {'-':>6}")
    print(f"{name:<9} {a['sent']/n/dur:>9,.0f} {a['ans']/n/dur:>11,.0f} {a['proc']/n:>7.2f} "
          f"{a['rx']/n:>6.2f} {cpu/n:>6.2f} {a['cpu1']/n:>7.2f} {base[name]:>9,.0f}  {hm}  {rng}")
for ours in ("ours-xdp", "ours-udp"):
    if base.get(ours) and base.get("unbound"):
        print(f"{ours} / unbound: {base[ours] / base['unbound']:.2f}x (q/CPU-s)")
EOF
done
