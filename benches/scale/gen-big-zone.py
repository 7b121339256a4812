#!/usr/bin/env python3
"""gen-big-zone.py RECORDS OUT: a Kubernetes-shaped cluster.local. zone with about RECORDS records.

Per service (in 1,000 namespaces): one ClusterIP A record and one _http._tcp SRV; one service
in ten is headless with four pod A records at the service name and four per-pod names.
Addresses are unique, drawn from 10.0.0.0/8. Deterministic: the same RECORDS gives the same file.
"""
import sys

records, out = int(sys.argv[1]), sys.argv[2]
with open(out, "w") as f:
    f.write("$ORIGIN cluster.local.\n$TTL 30\n")
    f.write("@ SOA ns.dns.cluster.local. hostmaster.cluster.local. 1 7200 1800 86400 30\n")
    f.write("@ NS ns.dns\nns.dns A 10.255.255.253\n")
    n, i, ip = 3, 0, 0x0A000001
    while n < records:
        ns = "ns%d" % (i % 1000)
        svc = "svc%d.%s.svc" % (i, ns)
        if i % 10 == 9:  # headless: 4 pods
            for _ in range(4):
                a = "%d.%d.%d.%d" % (ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255)
                f.write("%s A %s\n%s.%s A %s\n" % (svc, a, a.replace(".", "-"), svc, a))
                ip += 1
            n += 8
        else:
            a = "%d.%d.%d.%d" % (ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255)
            f.write("%s A %s\n_http._tcp.%s SRV 0 100 80 %s.cluster.local.\n" % (svc, a, svc, svc))
            ip += 1
            n += 2
        i += 1
print("%d records, %d services -> %s" % (n, i, out), file=sys.stderr)
