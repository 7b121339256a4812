#!/usr/bin/env bash
# Packets forwarded per LB CPU-second on veth: `dataplane lb` on AF_XDP with its XDP fast path
# (established flows forwarded by the XDP program, XDP_TX), on AF_XDP without it and on
# AF_PACKET, side by side with the kernel's own DNAT (nftables `dnat to numgen random mod 3 map {...}` plus
# SNAT, as kube-proxy's nftables mode balances a Service, with full-NAT's source rewrite), on
# one namespace topology, in one run. Not a test: it prints a table.
#
#   cargo build --release -p dataplane -p benches --bin dataplane --bin xdp-pass && sudo benches/lb/compare.sh
#   SECS=5 SOCKETS=256 RATE=150000 BIN=target/release/dataplane benches/lb/compare.sh
#
# Topology (as tests/lb_netns.rs): client, lb and three real servers on one bridge; the
# client sends to VIP 203.0.113.10:53 (static neighbour -> lb0); the real servers sink UDP
# :5353 (a socket never read: no ICMP back).
#
# CPUs (2 cores): the load (sender, bridge forwarding to the real servers, their receive) is
# on CPU 0; the balancer's receive path is on CPU 1: RPS sends the bridge's frames from the
# client to CPU 1 (so the frames reach lb0 there: native XDP, the AF_PACKET tap and netfilter
# all run there), RPS on p-lb sends what lb0 transmits back to CPU 0, and our process is
# pinned to CPU 1. "LB CPU-s" is CPU 1's busy time: wall time minus the time CPU 1 spent in its
# cpuidle states (/sys/devices/system/cpu/cpu1/cpuidle/state*/time, microseconds measured at
# each idle exit, so interrupt and softirq work is counted exactly; /proc/stat's irq and softirq
# columns are sampled at the timer tick on kernels without CONFIG_IRQ_TIME_ACCOUNTING and
# missed most of nftables' work, which runs in short softirq bursts). It covers our process,
# the kernel's receive and netfilter work and ksoftirqd, and anything else that runs on CPU 1:
# keep CPU 1 free of other work (e.g. move other tasks off it with `taskset -a -p 1 PID`).
# Our process's own on-CPU time (the sum of /proc/PID/task/*/schedstat, nanoseconds) is shown
# apart ("proc-s"). The `baseline` row (everything
# dropped at lb0's ingress hook, nothing balancing) is the share of that figure no balancer
# can avoid (the bridge, veth receive); "net" subtracts it. The load is paced (RATE): a saturated CPU 1 starves a user-space
# balancer of its CPU (receive livelock) and measures that, not the cost per packet.
# Forwarded = rx_packets on the real servers' eth0. TX checksum offload is off on the client
# (AF_XDP frames carry no "checksum not finished" flag).
#
# The fast path row: each flow's first datagram goes through user space, which installs the
# flow in the program's map; the rest never leaves the kernel. Its XDP_TX frames go into the
# veth peer (p-lb), which takes them only if it runs an XDP program of its own (the kernel
# schedules the peer's NAPI from XDP_TX only then: see l4lb::fastpath::peer), so for that row
# `xdp-pass` holds an XDP_PASS program on p-lb. That peer work (the pass program, building the
# skb, steering it to CPU 0) runs on CPU 1 and is counted in that row's LB CPU-s: a veth cost
# that a physical NIC transmitting the frame does not have. The `generic+fast` row runs the
# same program in generic XDP (`--xdp-mode generic`: after lb0 built the skb, XDP_TX is a plain
# transmit to p-lb, no program on the peer), the mode that suits veth.
#
# The `nft-ingress-fwd` row is the floor: a stateless rewrite and forward at lb0's ingress hook
# (no conntrack, no routing, no balancing), i.e. the delivery work every balancer here pays.
#
# Needs root, iproute2, nftables (nft), ethtool, etcd + etcdctl, curl, rustc.
set -euo pipefail

SECS=${SECS:-5}
SOCKETS=${SOCKETS:-256}
RATE=${RATE:-150000}   # offered packets/s: below what saturates CPU 1 on a 2-core box
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=${BIN:-$ROOT/target/release/dataplane}
PASS=${PASS:-$(dirname "$BIN")/xdp-pass}
LB_CPU=1
LOAD_CPU=0
P=lbb$$
TMP=$(mktemp -d)
VIP=203.0.113.10
SNAT=198.51.100.100
LB_MAC=02:00:00:00:00:0a
CLIENT_MAC=02:00:00:00:00:02
RS=(198.51.100.11 198.51.100.12 198.51.100.13)
NS=(br cl lb rs1 rs2 rs3)
PIDS=()

[ "$(id -u)" -eq 0 ] || { echo "compare.sh: needs root (namespaces, XDP)" >&2; exit 1; }
[ -x "$BIN" ] && [ -x "$PASS" ] || {
  echo "compare.sh: build first: cargo build --release -p dataplane -p benches --bin dataplane --bin xdp-pass" >&2; exit 1; }
for c in ip nft ethtool etcd etcdctl curl rustc taskset; do
  command -v $c >/dev/null || { echo "compare.sh: $c is missing" >&2; exit 1; }
done

LB_PID=
cleanup() {
  for pid in "${PIDS[@]}" $LB_PID; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  for n in "${NS[@]}"; do ip netns del "$P-$n" 2>/dev/null || true; done
  rm -rf "$TMP"
}
trap cleanup EXIT

nsx() { local n=$1; shift; ip netns exec "$P-$n" "$@"; }

rustc --edition 2024 -O -o "$TMP/flood" "$ROOT/benches/lb/flood.rs"

for n in "${NS[@]}"; do ip netns add "$P-$n"; ip -n "$P-$n" link set lo up; done
ip -n "$P-br" link add br0 type bridge
ip -n "$P-br" link set br0 up
link() { # short dev mac addr
  ip -n "$P-br" link add "p-$1" type veth peer name "$2" netns "$P-$1"
  ip -n "$P-br" link set "p-$1" master br0 up
  ip -n "$P-$1" link set "$2" address "$3"
  ip -n "$P-$1" addr add "$4" dev "$2"
  ip -n "$P-$1" link set "$2" up
}
link cl cl0 $CLIENT_MAC 203.0.113.2/24
link lb lb0 $LB_MAC 198.51.100.1/24
ip -n "$P-cl" neigh replace $VIP lladdr $LB_MAC dev cl0 nud permanent
nsx cl ethtool -K cl0 tx off >/dev/null
for i in 0 1 2; do
  mac=02:00:00:00:01:0$((i + 1))
  link "rs$((i + 1))" eth0 $mac "${RS[$i]}/24"
  ip -n "$P-lb" neigh replace "${RS[$i]}" lladdr $mac dev lb0 nud permanent
  nsx "rs$((i + 1))" sh -c "echo 1 > /sys/class/net/eth0/queues/rx-0/rps_cpus"
  ip netns exec "$P-rs$((i + 1))" "$TMP/flood" sink 5353 &
  PIDS+=($!)
done
nsx br sh -c "echo $((1 << LB_CPU)) > /sys/class/net/p-cl/queues/rx-0/rps_cpus;
  echo $((1 << LOAD_CPU)) > /sys/class/net/p-lb/queues/rx-0/rps_cpus"
nsx lb sh -c 'echo 0 > /proc/sys/net/ipv4/conf/all/rp_filter; echo 0 > /proc/sys/net/ipv4/conf/lb0/rp_filter
  echo 0 > /proc/sys/net/ipv4/conf/all/send_redirects; echo 0 > /proc/sys/net/ipv4/conf/lb0/send_redirects'

# The store, inside the lb namespace.
taskset -c $LOAD_CPU ip netns exec "$P-lb" etcd --data-dir "$TMP/etcd" --name bench \
  --listen-client-urls http://127.0.0.1:23790 --advertise-client-urls http://127.0.0.1:23790 \
  --listen-peer-urls http://127.0.0.1:23800 >"$TMP/etcd.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do nsx lb etcdctl --endpoints 127.0.0.1:23790 endpoint health >/dev/null 2>&1 && break; sleep 0.2; done
rs_json=$(printf '{"address":"%s","port":5353,"weight":1},' "${RS[@]}")
nsx lb etcdctl --endpoints 127.0.0.1:23790 put "/dataplane/vips/$VIP/53/udp" \
  "{\"v\":1,\"address\":\"$VIP\",\"port\":53,\"protocol\":\"UDP\",\"real_servers\":[${rs_json%,}]}" >/dev/null

forwarded() {
  local sum=0
  for r in rs1 rs2 rs3; do sum=$((sum + $(nsx $r cat /sys/class/net/eth0/statistics/rx_packets))); done
  echo $sum
}
csum_errors() {
  local sum=0
  for r in rs1 rs2 rs3; do
    sum=$((sum + $(nsx $r awk '/^Udp:/ { if (h) print $7; h = 1 }' /proc/net/snmp)))
  done
  echo $sum
}
# Microseconds: wall clock; CPU 1 idle (each state's residency); a process's on-CPU time.
wall_us() { echo $(($(date +%s%N) / 1000)); }
idle_us() { cat /sys/devices/system/cpu/cpu$LB_CPU/cpuidle/state*/time | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
all_idle_us() { cat /sys/devices/system/cpu/cpu[0-9]*/cpuidle/state*/time | awk '{ s += $1 } END { printf "%.0f\n", s }'; }
NCPU=$(ls -d /sys/devices/system/cpu/cpu[0-9]* | wc -l)
proc_us() {
  [ -n "$1" ] || { echo 0; return; }
  cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{ s += $1 } END { printf "%.0f\n", s / 1000 }'
}
[ -r /sys/devices/system/cpu/cpu$LB_CPU/cpuidle/state0/time ] || {
  echo "compare.sh: cpu$LB_CPU has no cpuidle residency counters to measure its busy time with" >&2; exit 1; }

ROWS=()
measure() { # name [lb-pid]
  local name=$1 pid=${2:-}
  # Warm up (sessions, conntrack entries), then measure.
  nsx cl taskset -c $LOAD_CPU "$TMP/flood" $VIP:53 "$SOCKETS" 0.5 "$RATE" >/dev/null
  sleep 0.3
  local f0 e0 w0 i0 p0 a0 f1 e1 w1 i1 p1 a1 out
  f0=$(forwarded); e0=$(csum_errors); w0=$(wall_us); i0=$(idle_us); p0=$(proc_us "$pid"); a0=$(all_idle_us)
  out=$(nsx cl taskset -c $LOAD_CPU "$TMP/flood" $VIP:53 "$SOCKETS" "$SECS" "$RATE")
  sleep 0.2
  f1=$(forwarded); e1=$(csum_errors); w1=$(wall_us); i1=$(idle_us); p1=$(proc_us "$pid"); a1=$(all_idle_us)
  ROWS+=("$name ${out%% *} $((f1 - f0)) $((e1 - e0)) $(((w1 - w0) - (i1 - i0))) $((p1 - p0)) $((NCPU * (w1 - w0) - (a1 - a0)))")
}

start_lb() { # io [more flags]
  local io=$1; shift
  taskset -c $LB_CPU ip netns exec "$P-lb" "$BIN" lb --store etcd://127.0.0.1:23790 \
    --interface lb0 --io "$io" --workers 1 --local-address $SNAT --gateway-mac $CLIENT_MAC \
    --metrics-listen 127.0.0.1:9155 "$@" >"$TMP/lb-$io.log" 2>&1 &
  LB_PID=$!
  for _ in $(seq 100); do
    nsx lb curl -s -m 1 http://127.0.0.1:9155/metrics 2>/dev/null | grep -q '^lb_vips 1' && return 0
    sleep 0.1
  done
  echo "compare.sh: the balancer ($io) did not come up:" >&2; cat "$TMP/lb-$io.log" >&2; exit 1
}
stop_lb() { kill "$LB_PID"; wait "$LB_PID" || true; LB_PID=; }

nsx lb nft add table netdev baseline
nsx lb nft add chain netdev baseline in '{ type filter hook ingress device "lb0" priority 0; policy drop; }'
measure baseline
nsx lb nft delete table netdev baseline

nsx lb sh -c 'echo 1 > /proc/sys/net/ipv4/ip_forward'
nsx lb nft -f - <<EOF
table ip lbbench {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr $VIP udp dport 53 dnat to numgen random mod 3 map { 0 : ${RS[0]}, 1 : ${RS[1]}, 2 : ${RS[2]} } : 5353
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip daddr 198.51.100.0/24 udp dport 5353 snat to $SNAT
  }
}
EOF
measure nft-dnat
nsx lb nft delete table ip lbbench
nsx lb sh -c 'echo 0 > /proc/sys/net/ipv4/ip_forward'

# The floor: a stateless rewrite to one real server and a forward at lb0's ingress hook (no
# conntrack, no routing, no balancing). No balancer on this topology can cost less than this
# row's delivery work, so "ours / nft-dnat" here cannot reach much past "this row / nft-dnat".
nsx lb nft -f - <<EOF
table netdev floor {
  chain in {
    type filter hook ingress device "lb0" priority 0; policy accept;
    ip daddr $VIP udp dport 53 ether saddr set $LB_MAC ether daddr set 02:00:00:00:01:01 ip saddr set $SNAT ip daddr set ${RS[0]} udp dport set 5353 fwd to "lb0"
  }
}
EOF
measure nft-ingress-fwd
nsx lb nft delete table netdev floor

start_lb af_packet
measure dataplane-af_packet "$LB_PID"
stop_lb
start_lb xdp --xdp-fast-path=false
measure dataplane-af_xdp "$LB_PID"
stop_lb
ip netns exec "$P-br" "$PASS" p-lb >"$TMP/xdp-pass.log" 2>&1 &
PASS_PID=$!
PIDS+=($PASS_PID)
for _ in $(seq 50); do grep -q xdp-pass "$TMP/xdp-pass.log" && break; sleep 0.1; done
start_lb xdp --xdp-fast-path=true
measure dataplane-xdp+fast "$LB_PID"
FAST=$(nsx lb curl -s http://127.0.0.1:9155/metrics | awk '/^lb_fast_path_packets_total/ { print $2 }')
stop_lb
kill "$PASS_PID"
wait "$PASS_PID" 2>/dev/null || true
start_lb xdp --xdp-fast-path=true --xdp-mode generic
measure dataplane-generic+fast "$LB_PID"
FAST_GENERIC=$(nsx lb curl -s http://127.0.0.1:9155/metrics | awk '/^lb_fast_path_packets_total/ { print $2 }')
stop_lb

echo
echo "veth, 64-byte UDP frames from $SOCKETS source ports at $RATE/s, ${SECS}s per row"
echo "LB CPU-s = cpu$LB_CPU busy time (wall minus cpuidle residency); net = minus the baseline's;"
echo "  proc-s = our process alone (schedstat); all-s = every CPU's busy time (load, bridge and real"
echo "  servers included); all-net = minus the baseline's per frame sent (what the balancing adds,"
echo "  wherever the kernel ran it)"
echo "fast path: ${FAST:-0} (native), ${FAST_GENERIC:-0} (generic) packets forwarded by the XDP program"
echo "  itself (warm-up included)"
printf '%-22s %8s %9s %7s %8s %8s %7s %8s %13s %8s %8s %14s\n' mode sent forwarded csumerr LB-CPU-s net-s proc-s fwd/s fwd/net-CPU-s all-s all-net fwd/all-net-s
base=
base_all=
base_sent=
for row in "${ROWS[@]}"; do
  read -r name sent fwd cerr busy proc all <<<"$row"
  [ -n "$base" ] || { base=$busy; base_all=$all; base_sent=$sent; }
  awk -v n="$name" -v s="$sent" -v f="$fwd" -v e="$cerr" -v b="$busy" -v p="$proc" -v z="$base" \
    -v a="$all" -v za="$base_all" -v zs="$base_sent" -v secs="$SECS" 'BEGIN {
    cpu = b / 1e6; net = (b - z) / 1e6; alls = a / 1e6; alln = (a - za * s / zs) / 1e6
    printf "%-22s %8d %9d %7d %8.2f %8.2f %7.2f %8.0f %13.0f %8.2f %8.2f %14.0f\n", n, s, f, e, cpu, net, p / 1e6,
      f / secs, (net > 0 ? f / net : 0), alls, alln, (alln > 0 ? f / alln : 0)
  }'
done
