#!/bin/bash
# Captures vtysh output of FRR for doctor's unit tests: a node with the
# docs/frr.md recipe and a router that summarises and redistributes. Run on
# Debian 12 (FRR 8.4) into doctor/testdata, in the Debian 13 root (FRR 10.3,
# make capture-frr10) into doctor/testdata/frr10. Where the FRR has mgmtd
# (10), it starts first and takes staticd's route through vtysh: neither
# reads a configuration file of the pathspace.
set -u
N=awcapn; R=awcapr; OUT=${1:?usage: capture.sh OUTDIR (as root)}
mkdir -p $OUT
cleanup() {
  for p in $(cat $OUT/.pids 2>/dev/null); do kill $p 2>/dev/null; done
  sleep 0.5; ip netns del $N 2>/dev/null; ip netns del $R 2>/dev/null
  rm -rf /etc/frr/$N /etc/frr/$R /var/run/frr/$N /var/run/frr/$R $OUT/.pids $OUT/aw.yaml $OUT/state
}
cleanup
ip netns add $N; ip netns add $R
ip -n $N link set lo up; ip -n $R link set lo up
ip link add n-r netns $N type veth peer name r-n netns $R
ip -n $N addr add 198.51.100.1/31 dev n-r; ip -n $N link set n-r up
ip -n $R addr add 198.51.100.0/31 dev r-n; ip -n $R link set r-n up
ip -n $N addr add 203.0.113.1/32 dev lo; ip -n $N addr add 192.0.2.53/32 dev lo; ip -n $N addr add 2001:db8::53/128 dev lo
ip -n $N addr add 192.0.2.54/32 dev lo
ip -n $N link add anycast-lr type ifb; ip -n $N link set anycast-lr up
ip -n $R addr add 203.0.113.254/32 dev lo
ip -n $R link add r-a1 type ifb; ip -n $R link set r-a1 up; ip -n $R addr add 192.0.2.129/25 dev r-a1
ip netns exec $R sysctl -qw net.ipv4.ip_forward=1
for ns in $N $R; do mkdir -p /etc/frr/$ns /var/run/frr/$ns; chown frr:frr /etc/frr/$ns /var/run/frr/$ns; echo "hostname $ns" > /etc/frr/$ns/zebra.conf; : > /etc/frr/$ns/vtysh.conf; done
cat > /etc/frr/$N/ospfd.conf <<C
interface lo
 ip ospf passive
!
interface anycast-lr
 ip ospf passive
 ip ospf cost 65535
!
interface n-r
 ip ospf network point-to-point
 ip ospf hello-interval 1
 ip ospf dead-interval 3
!
router ospf
 ospf router-id 203.0.113.1
 network 198.51.100.0/24 area 0
 network 203.0.113.0/24 area 0
 network 192.0.2.0/24 area 0
 timers throttle spf 0 10 1000
 timers lsa min-arrival 0
!
C
cat > /etc/frr/$N/ospf6d.conf <<C
interface lo
 ipv6 ospf6 area 0
 ipv6 ospf6 passive
!
interface anycast-lr
 ipv6 ospf6 area 0
 ipv6 ospf6 passive
 ipv6 ospf6 cost 65535
!
interface n-r
 ipv6 ospf6 area 0
 ipv6 ospf6 network point-to-point
!
router ospf6
 ospf6 router-id 203.0.113.1
 timers lsa min-arrival 0
!
C
cat > /etc/frr/$N/bgpd.conf <<C
router bgp 65001
 bgp router-id 203.0.113.1
 no bgp network import-check
 no bgp ebgp-requires-policy
 address-family ipv4 unicast
  network 192.0.2.53/32
 exit-address-family
!
C
cat > /etc/frr/$R/ospfd.conf <<C
interface r-n
 ip ospf network point-to-point
 ip ospf hello-interval 1
 ip ospf dead-interval 3
!
router ospf
 ospf router-id 203.0.113.254
 network 198.51.100.0/24 area 0
 network 203.0.113.0/24 area 0
 network 192.0.2.128/25 area 1
 area 1 range 192.0.2.0/24
 redistribute static
!
C
cp /etc/frr/$R/ospfd.conf /dev/null
echo "ip route 192.0.2.0/23 blackhole" > /etc/frr/$R/staticd.conf
: > /etc/frr/$R/ospf6d.conf
MGMTD=; [ -x /usr/lib/frr/mgmtd ] && MGMTD=1
start() {
  conf=(-f /etc/frr/$1/$2.conf)
  if [ -n "$MGMTD" ] && { [ $2 = mgmtd ] || [ $2 = staticd ]; }; then conf=(); fi
  ip netns exec $1 /usr/lib/frr/$2 -d -N $1 -F traditional -A 127.0.0.1 "${conf[@]}" -i /var/run/frr/$1/$2.pid >/dev/null 2>&1; sleep 0.3; cat /var/run/frr/$1/$2.pid >> $OUT/.pids
}
for ns in $N $R; do [ -n "$MGMTD" ] && { start $ns mgmtd; sleep 0.5; }; start $ns zebra; sleep 0.5; start $ns ospfd; start $ns ospf6d; done
start $N bgpd
start $R staticd
if [ -n "$MGMTD" ]; then sleep 1; vtysh -N $R -c "configure terminal" -c "$(cat /etc/frr/$R/staticd.conf)"; fi
sleep 12
V="vtysh -N $N"
$V -d ospfd -c "show running-config" > $OUT/running-config-ospfd.txt 2>/dev/null
$V -d ospf6d -c "show running-config" > $OUT/running-config-ospf6d.txt 2>/dev/null
$V -d bgpd -c "show running-config" > $OUT/running-config-bgpd.txt 2>/dev/null
$V -d ospfd -c "show ip ospf json" -c "show ip ospf database summary json" -c "show ip ospf database external json" > $OUT/ospf-instance.json 2>/dev/null
$V -d ospf6d -c "show ipv6 ospf6 json" > $OUT/ospf6-instance.json 2>/dev/null
ip -n $N -j addr show > $OUT/ip-addr-show.json
vtysh -N $R -c "show ip ospf database" 2>/dev/null | tail -20
cat > $OUT/aw.yaml <<Y
interface: lo
frr:
  pathspace: $N
control_socket: $OUT/aw.sock
state_dir: $OUT/state
services:
  - name: dns
    prefixes: [192.0.2.53/32, 2001:db8::53/128]
    checks:
      - type: dns
        server: 127.0.0.1:53
        query: health.example.
Y
if [ -x "${AW:-}" ]; then ip netns exec $N $AW doctor --config $OUT/aw.yaml > $OUT/doctor-run.txt; echo "doctor exit $?" >> $OUT/doctor-run.txt; fi
cleanup
