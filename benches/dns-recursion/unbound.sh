# Sourced by compare.sh and xdp.sh: the one Unbound configuration both compare against, a
# caching forwarder with one thread, iterator only.
# unbound_conf ADDRESS PORT ALLOWED_NET DIR UPSTREAM_ADDRESS UPSTREAM_PORT [SERVER_LINE...]
unbound_conf() {
  local address=$1 port=$2 allowed=$3 dir=$4 up_address=$5 up_port=$6 line
  shift 6
  cat <<CONF
server:
    interface: $address@$port
    port: $port
    num-threads: 1
    so-reuseport: no
CONF
  for line in "$@"; do echo "    $line"; done
  cat <<CONF
    access-control: $allowed allow
    do-not-query-localhost: no
    module-config: "iterator"
    qname-minimisation: no
    msg-cache-size: 64m
    rrset-cache-size: 128m
    use-syslog: no
    logfile: ""
    verbosity: 0
    chroot: ""
    username: ""
    directory: "$dir"
    pidfile: "$dir/unbound.pid"
    domain-insecure: "cluster.local"
    local-zone: "local." nodefault
forward-zone:
    name: "."
    forward-addr: $up_address@$up_port
CONF
}
