#!/usr/bin/env bash
# Queries answered per server CPU-second over a veth pair, in one run: `dataplane dns --io xdp`
# (AF_XDP), the same with its XDP answer cache (`ours-cache`: repeated questions answered by
# the XDP program itself, XDP_TX into the peer, where kxdpgun's own XDP program takes them),
# Knot DNS in its XDP mode, Knot over UDP sockets, and `dataplane dns` over UDP
# sockets (recvmmsg/sendmmsg); the same zone and query mix, one worker each, kxdpgun (Knot's
# AF_XDP load generator) as the client. Not a test: it prints a table.
#
#   cargo build --release -p dataplane && sudo benches/dns-xdp/compare.sh
#   DURATION=10 RATES="80000 400000" ROUNDS=2 CASES="ours-xdp knot-xdp" benches/dns-xdp/compare.sh
#
# Adapted from ../shared/bench/dns/xdp-test.sh (same topology, zone and queries: gen-zone.py,
# N=10000 Kubernetes-shaped services, 80 % A, 5 % AAAA NODATA, 5 % SRV, 10 % NXDOMAIN).
#
#   netns C: vc0 192.0.2.2/24  ══ veth ══  netns S: vs0 192.0.2.1/24 (server, port 53)
#
# CPUs (2 cores): the server is pinned to CPU 1, kxdpgun to CPU 0. On veth the receive work
# of a frame (NAPI: the XDP program, the redirect and the copy into the UMEM, or the kernel's
# whole UDP receive path) runs where NAPI runs, by default on the SENDING CPU: the server's
# receive work would land on the client's core and go uncounted. So both veths get threaded
# NAPI (`/sys/class/net/DEV/threaded`), vs0's kthread pinned to CPU 1 and vc0's to CPU 0: the
# server's receive work is on the server's core, the client's on the client's. The server's
# transmit work (the AF_XDP copy-mode `sendto`, or the UDP send path, and veth_xmit) runs in
# the server's own system calls on CPU 1.
#
# "CPU-s" is the server's whole CPU time over the run: the process's utime + stime, all
# threads ("proc-s", /proc/PID/stat), plus the CPU time of vs0's NAPI kthreads ("rx-s", the
# receive work, /proc/PID/stat of napi/vs0-*), i.e. ALL the server-side work, kernel included,
# whatever else the machine runs. CPU 1's busy time from /proc/stat (user + nice + system +
# irq + softirq) is shown as a cross-check ("cpu1-s"): on a quiet machine it agrees with
# CPU-s; on a shared one other work inflates it. The headline is q/CPU-s = answered / CPU-s.
# The load is open loop (kxdpgun -Q RATE), one table per rate: below what a server can answer
# (80k: every query answered, the cost per query), and far above it (400k: the server core
# saturated, the excess dropped at the receive ring or socket after some receive work).
#
# Needs root, iproute2, ethtool, knotd, kxdpgun (knot-dnsutils), dig, python3.
set -uo pipefail

ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release/dataplane}
DURATION=${DURATION:-10}
RATES=${RATES:-${RATE:-80000 400000}}
ROUNDS=${ROUNDS:-1}
CASES=${CASES:-"ours-xdp ours-cache knot-xdp knot-udp ours-udp"}
SERVER_CPU=${SERVER_CPU:-1}
CLIENT_CPU=${CLIENT_CPU:-0}
BENCH=${BENCH:-/work/shared/bench/dns}
DATA=${DATA:-/tmp/dnsbench/data-n10000-s1-q100000}
OUT=${OUT:-/tmp/dns-xdp-bench.$$}
HZ=$(getconf CLK_TCK)
S=dxb$$-s C=dxb$$-c SIP=192.0.2.1 CIP=192.0.2.2 PORT=53
server_pid=""

[ "$(id -u)" -eq 0 ] || { echo "compare.sh: needs root (namespaces, XDP)" >&2; exit 1; }
[ -x "$BIN" ] || { echo "compare.sh: build first: cargo build --release -p dataplane" >&2; exit 1; }
for c in ip ethtool knotd kxdpgun dig taskset python3; do
  command -v $c >/dev/null || { echo "compare.sh: $c is missing" >&2; exit 1; }
done
mkdir -p "$OUT"
if [[ ! -f $DATA/cluster.local.zone ]]; then
  DATA=$OUT/data
  mkdir -p "$DATA"
  (cd "$DATA" && python3 "$BENCH/gen-zone.py" -n 10000 --seed 1 --queries 100000 >/dev/null)
fi
ZONE=$DATA/cluster.local.zone QFILE=$DATA/queries.txt

stop_server() {
  [[ -n "$server_pid" ]] || return 0
  kill "$server_pid" 2>/dev/null
  for _ in $(seq 50); do kill -0 "$server_pid" 2>/dev/null || break; sleep 0.1; done
  kill -9 "$server_pid" 2>/dev/null
  wait "$server_pid" 2>/dev/null
  server_pid=""
  # knotd attaches its XDP program with netlink and leaves it behind; ours is a BPF link,
  # gone with the process. Either way the next server finds vs0 free.
  ip -n $S link set vs0 xdp off 2>/dev/null
}
. "$(dirname "$0")/veth.sh"
trap teardown EXIT

knot_conf() {  # $1 = udp|xdp, $2 = dir
  cat <<EOF
server:
    rundir: "$2"
    listen: $SIP@$PORT
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
log:
  - target: stderr
    any: warning
database:
    storage: "$2/db"
template:
  - id: default
    storage: "$2"
    semantic-checks: off
    journal-content: none
    zonefile-sync: -1
zone:
  - domain: cluster.local.
    file: "$2/zone"
EOF
  if [[ $1 == xdp ]]; then
    cat <<EOF
xdp:
    listen: vs0@$PORT
    udp: on
    tcp: off
    route-check: off
EOF
  fi
}

start_server() {  # $1 = case
  local d="$OUT/$1" cmd
  rm -rf "$d"; mkdir -p "$d/db"
  case $1 in
    ours-xdp) cmd=("$BIN" dns --listen "$SIP:$PORT" --zone-file "$ZONE" --workers 1
                   --io xdp --xdp-interface vs0 --metrics-listen 127.0.0.1:9153) ;;
    ours-cache) cmd=("$BIN" dns --listen "$SIP:$PORT" --zone-file "$ZONE" --workers 1
                   --io xdp --xdp-interface vs0 --xdp-answer-cache 65536
                   --metrics-listen 127.0.0.1:9153) ;;
    ours-udp) cmd=("$BIN" dns --listen "$SIP:$PORT" --zone-file "$ZONE" --workers 1
                   --io mmsg --metrics-listen 127.0.0.1:9153) ;;
    knot-xdp|knot-udp)
      cp "$ZONE" "$d/zone"
      knot_conf "${1#knot-}" "$d" > "$d/knot.conf"
      cmd=(knotd -c "$d/knot.conf") ;;
    *) echo "unknown case $1" >&2; return 1 ;;
  esac
  ip netns exec $S taskset -c "$SERVER_CPU" "${cmd[@]}" > "$d/log" 2>&1 &
  server_pid=$!
  for _ in $(seq 100); do
    ip netns exec $S dig +time=1 +tries=1 -p $PORT @$SIP cluster.local. SOA 2>/dev/null \
      | grep -q 'status: NOERROR' && break
    sleep 0.2
  done
  # knotd pins its workers itself: every thread back onto the server CPU.
  taskset -a -pc "$SERVER_CPU" "$server_pid" >/dev/null 2>&1
  kill -0 "$server_pid" 2>/dev/null || { echo "$1 died:"; cat "$d/log"; return 1; }
  # A correctness probe from the client side before the load.
  ip netns exec $C dig +time=1 +tries=1 -p $PORT @$SIP \
    "$(awk 'NR == 1 { print $1 }' "$QFILE")" "$(awk 'NR == 1 { print $2 }' "$QFILE")" \
    > "$d/probe.txt" 2>&1
  grep -q 'status: NOERROR' "$d/probe.txt" || { echo "$1: probe failed"; cat "$d/probe.txt"; return 1; }
  pin_napi > "$d/napi.txt"
  grep -q 'napi/vs0-' "$d/napi.txt" || { echo "$1: no NAPI kthread on vs0"; return 1; }
}

RESULTS=$OUT/results.tsv
run_case() {  # $1 = case, $2 = round, $3 = rate
  local name=$1 log="$OUT/$1-r$2-q$3.kxdpgun.txt" t0 t1 n0 n1 b0 b1 s0 s1 ans
  setup || { echo "netns/veth setup failed" >&2; exit 1; }
  start_server "$name" || { stop_server; return; }
  sleep 1
  t0=$(ticks "$server_pid"); n0=$(napi_ticks); b0=$(busy "$SERVER_CPU"); s0=$(steal "$SERVER_CPU")
  ip netns exec $C kxdpgun -t "$DURATION" -Q "$3" -F "${CLIENT_CPU}s1" -p $PORT \
    -i "$QFILE" -I vc0 $SIP > "$log" 2>&1
  t1=$(ticks "$server_pid"); n1=$(napi_ticks); b1=$(busy "$SERVER_CPU"); s1=$(steal "$SERVER_CPU")
  ans=$(awk '/total replies:/ { print $3; exit }' "$log")
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$2" "${ans:-0}" \
    "$(awk -v a="$t0" -v b="$t1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')" \
    "$(awk -v a="$n0" -v b="$n1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')" \
    "$(awk -v a="$b0" -v b="$b1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')" \
    "$(awk -v a="$s0" -v b="$s1" -v hz="$HZ" 'BEGIN { printf "%.2f", (b - a) / hz }')" \
    "$(awk '/total queries:/ { print $3; exit }' "$log")" >> "$RESULTS.$3"
  stop_server
}

echo "kernel $(uname -r); knot $(knotd -V 2>&1 | grep -o '[0-9][0-9.]*' | head -1);" \
  "dataplane $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)+worktree;" \
  "${DURATION}s per run, $ROUNDS round(s), kxdpgun -Q {$RATES} on CPU $CLIENT_CPU, server on CPU $SERVER_CPU;" \
  "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
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
for name, rnd, ans, proc, rx, cpu1, steal, sent in rows:
    a = agg.setdefault(name, {"ans": 0, "proc": 0.0, "rx": 0.0, "cpu1": 0.0, "steal": 0.0, "sent": 0, "n": 0, "q": []})
    a["ans"] += int(ans); a["proc"] += float(proc); a["rx"] += float(rx); a["cpu1"] += float(cpu1)
    a["steal"] += float(steal); a["sent"] += int(sent or 0); a["n"] += 1
    total = float(proc) + float(rx)
    a["q"].append(int(ans) / total if total > 0 else 0)
print(f"{'case':<10} {'sent/s':>9} {'answered/s':>11} {'proc-s':>7} {'rx-s':>6} {'CPU-s':>6} {'cpu1-s':>7} {'steal':>6} {'q/proc-s':>9} {'q/CPU-s':>9}  range")
base = {}
for name, a in agg.items():
    n = a["n"]
    cpu = a["proc"] + a["rx"]
    qcpu = a["ans"] / cpu if cpu else 0
    base[name] = qcpu
    qproc = a["ans"] / a["proc"] if a["proc"] else 0
    rng = f"{min(a['q']):,.0f}-{max(a['q']):,.0f}" if n > 1 else ""
    print(f"{name:<10} {a['sent']/n/dur:>9,.0f} {a['ans']/n/dur:>11,.0f} {a['proc']/n:>7.2f} {a['rx']/n:>6.2f} {cpu/n:>6.2f} "
          f"{a['cpu1']/n:>7.2f} {a['steal']/n:>6.2f} {qproc:>9,.0f} {qcpu:>9,.0f}  {rng}")
for ours in ("ours-xdp", "ours-cache"):
    if base.get(ours):
        for k in ("knot-xdp", "knot-udp", "ours-udp"):
            if base.get(k):
                print(f"{ours} / {k}: {base[ours] / base[k]:.2f}x (q/CPU-s)")
EOF
done
