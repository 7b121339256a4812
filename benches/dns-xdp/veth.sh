# Sourced by the veth DNS benchmarks (compare.sh here, ../dns-recursion/xdp.sh): the netns pair,
# its NAPI kthreads' pinning, and the CPU counters their tables are built from. The caller sets
# S and C (namespace names), SIP and CIP, SERVER_CPU and CLIENT_CPU, and defines stop_server.
#
#   netns C: vc0 CIP/24  ══ veth ══  netns S: vs0 SIP/24

teardown() {
  stop_server
  ip netns del $S 2>/dev/null; ip netns del $C 2>/dev/null
  # Namespace deletion is asynchronous: wait until the veths (and their kthreads) are gone.
  for _ in $(seq 50); do pgrep '^napi/v[sc]0-' >/dev/null || break; sleep 0.1; done
}

# A fresh pair for every run: attaching and detaching XDP programs changes a veth's NAPI
# state, so no run inherits another's.
setup() {
  teardown
  ip netns add $S && ip netns add $C || return 1
  ip link add vc0 netns $C type veth peer name vs0 netns $S || return 1
  ip -n $S addr add $SIP/24 dev vs0; ip -n $C addr add $CIP/24 dev vc0
  ip -n $S link set lo up; ip -n $C link set lo up
  ip -n $S link set vs0 up; ip -n $C link set vc0 up
  # kxdpgun needs the peer's MAC; the servers answer ARP through the kernel anyway.
  local ms mc
  ms=$(ip -n $S -o link show vs0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
  mc=$(ip -n $C -o link show vc0 | grep -o 'link/ether [0-9a-f:]*' | cut -d' ' -f2)
  ip -n $C neigh replace $SIP lladdr "$ms" dev vc0 nud permanent
  ip -n $S neigh replace $CIP lladdr "$mc" dev vs0 nud permanent
  # GRO gives each veth a NAPI context (so it can receive redirected frames, and so its
  # receive work can run in a kthread we pin).
  ip netns exec $S ethtool -K vs0 gro on >/dev/null 2>&1
  ip netns exec $C ethtool -K vc0 gro on >/dev/null 2>&1
  # veth hands a frame to the peer's NAPI only if the peer runs XDP or the frame could be
  # GRO'd, which (veth_skb_is_eligible_for_gro) rules out a sender with TSO: without this the
  # socket servers' receive work would run on the client's CPU and go uncounted.
  ip netns exec $S ethtool -K vs0 tso off >/dev/null 2>&1
  ip netns exec $C ethtool -K vc0 tso off >/dev/null 2>&1
  ip netns exec $S sh -c 'echo 1 > /sys/class/net/vs0/threaded'
  ip netns exec $C sh -c 'echo 1 > /sys/class/net/vc0/threaded'
}

# Pins the receive kthreads: vs0's on the server CPU, vc0's on the client CPU.
pin_napi() {
  local pid
  for pid in $(pgrep '^napi/vs0-'); do taskset -pc "$SERVER_CPU" "$pid" >/dev/null; done
  for pid in $(pgrep '^napi/vc0-'); do taskset -pc "$CLIENT_CPU" "$pid" >/dev/null; done
  pgrep -a '^napi/v[sc]0-' | tr '\n' ' '
}

# CPU time in ticks (USER_HZ): a process's utime + stime (all threads); vs0's NAPI kthreads';
# a CPU's busy time from /proc/stat (user + nice + system + irq + softirq) and its steal.
ticks() { sed 's/.*) //' /proc/"$1"/stat | awk '{ print $12 + $13 }'; }
napi_ticks() {
  local pid sum=0
  for pid in $(pgrep '^napi/vs0-'); do sum=$((sum + $(ticks "$pid"))); done
  echo $sum
}
busy() { awk -v c="cpu$1" '$1 == c { print $2 + $3 + $4 + $7 + $8 }' /proc/stat; }
steal() { awk -v c="cpu$1" '$1 == c { print $9 }' /proc/stat; }
