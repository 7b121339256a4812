#!/usr/bin/env bash
# cold.sh: cold-resolution latency through a local hierarchy, dataplane's resolver vs Unbound.
#
# Every level is served by this project's authoritative server (`dataplane dns --zone-file`),
# on port 53 because Unbound sends queries to referred servers on port 53 (so: run as root):
#   127.0.1.10  the root: delegates N TLDs t0. .. t{N-1}. (and warm.) to 127.0.1.11, with glue
#   127.0.1.11  the N TLD zones, each delegating d.tI. to 127.0.1.12, with glue
#   127.0.1.12  the N leaf zones d.tI., each with www A 192.0.2.1
# Each resolver, started empty with the same root hint, first resolves www.d.warm. (root
# priming), then www.d.tI. for every I, one query at a time: every name takes three upstream
# round trips (root referral, TLD referral, leaf answer), nothing of it cached. cold.py times
# each query from send to reply; both resolvers get the same names in the same order.
# Both run with one worker/thread, pinned to CPU 1 (the authoritative servers and the client
# share CPU 0). QMIN=1 turns QNAME minimisation on in both.
# Needs: a release build, unbound, python3, root.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BIN=${DATAPLANE:-$ROOT/target/release/dataplane}
WORK=${WORK:-/tmp/dns-recursion-cold}
N=${N:-500}
ROUNDS=${ROUNDS:-2}
QMIN=${QMIN:-0}
NET=${NET:-127.0.1}
mkdir -p "$WORK"
PR=$((40000 + RANDOM % 10000)) PM=$((30000 + RANDOM % 10000))

python3 - "$WORK" "$N" "$NET" <<'PY'
import sys
work, n, net = sys.argv[1], int(sys.argv[2]), sys.argv[3]
soa = "@ SOA ns hm 1 7200 900 1209600 300\n"
tlds = ["warm"] + ["t%d" % i for i in range(n)]
with open(f"{work}/root.zone", "w") as f:
    f.write("$ORIGIN .\n$TTL 86400\n. SOA a.root. hm.root. 1 7200 900 1209600 300\n")
    f.write(f". NS a.root.\na.root. A {net}.10\n")
    for t in tlds:
        f.write(f"{t}. NS ns.{t}.\nns.{t}. A {net}.11\n")
with open(f"{work}/tld.zone", "w") as f:
    for t in tlds:
        f.write(f"$ORIGIN {t}.\n$TTL 86400\n{soa}@ NS ns\nns A {net}.11\n")
        f.write(f"d NS ns.d\nns.d A {net}.12\n")
with open(f"{work}/leaf.zone", "w") as f:
    for t in tlds:
        f.write(f"$ORIGIN d.{t}.\n$TTL 3600\n{soa}@ NS ns\nns A {net}.12\nwww A 192.0.2.1\n")
with open(f"{work}/root.hints", "w") as f:
    f.write(f". 3600000 NS a.root.\na.root. 3600000 A {net}.10\n")
with open(f"{work}/names.txt", "w") as f:
    for t in tlds[1:]:
        f.write(f"www.d.{t}.\n")
PY

PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
for i in 10 11 12; do
  case $i in 10) z=root;; 11) z=tld;; 12) z=leaf;; esac
  taskset -c 0 "$BIN" --log-level warn dns --listen "$NET.$i:53" --zone-file "$WORK/$z.zone" \
    --workers 1 --metrics-listen 127.0.0.1:0 & PIDS+=($!)
done
for i in 10 11 12; do
  for _ in $(seq 1 100); do
    dig @"$NET.$i" +norec +time=1 +tries=1 . SOA 2>/dev/null | grep -q "status:" && break
    sleep 0.1
  done
done

start_ours() {
  local qmin=()
  [ "$QMIN" = 1 ] && qmin=(--qname-minimisation)
  taskset -c 1 "$BIN" --log-level warn dns --listen 127.0.0.1:$PR --workers 1 \
    --metrics-listen 127.0.0.1:$PM --recursion recursive --root-hint "$NET.10:53" \
    --allow-recursion 127.0.0.0/8 "${qmin[@]}" >/dev/null 2>&1 &
  RPID=$!
}

start_unbound() {
  local qmin=no
  [ "$QMIN" = 1 ] && qmin=yes
  cat > "$WORK/unbound.conf" <<CONF
server:
    interface: 127.0.0.1@$PR
    port: $PR
    num-threads: 1
    so-reuseport: no
    access-control: 127.0.0.0/8 allow
    do-not-query-localhost: no
    do-ip6: no
    module-config: "iterator"
    qname-minimisation: $qmin
    root-hints: "$WORK/root.hints"
    prefetch: no
    use-syslog: no
    logfile: ""
    verbosity: 0
    chroot: ""
    username: ""
    directory: "$WORK"
    pidfile: "$WORK/unbound.pid"
CONF
  taskset -c 1 unbound -d -c "$WORK/unbound.conf" >/dev/null 2>&1 &
  RPID=$!
}

wait_ready() {
  for _ in $(seq 1 100); do
    dig @127.0.0.1 -p $PR +time=2 +tries=1 www.d.warm. A 2>/dev/null | grep -q "status: NOERROR" && return 0
    sleep 0.1
  done
  echo "resolver on $PR did not answer" >&2; return 1
}

echo "# $N cold names, 3 upstream round trips each; latency in microseconds; QMIN=$QMIN; $(uptime)"
printf "%-10s %6s %6s %9s %9s %9s %9s %9s\n" resolver names failed p50 p90 p99 mean max
for round in $(seq 1 "$ROUNDS"); do
  for name in dataplane unbound; do
    if [ $name = dataplane ]; then start_ours; else start_unbound; fi
    wait_ready
    python3 "$HERE/cold.py" $PR "$WORK/names.txt" "$name"
    if [ $name = dataplane ]; then
      # Our own histogram of the same resolutions, as a cross-check.
      curl -s "http://127.0.0.1:$PM/metrics" | awk '
        /^dns_recursion_resolution_seconds_sum/ {s=$2} /^dns_recursion_resolution_seconds_count/ {c=$2}
        /^dns_recursion_upstream_queries_total/ {q+=$2}
        END { if (c) printf "#   dataplane /metrics: %d resolutions, mean %.0f us, %d upstream queries\n", c, s/c*1e6, q }'
    fi
    kill "$RPID"; wait "$RPID" 2>/dev/null || true
  done
done
