#!/bin/bash
# Captures bgpd's JSON (FRR 8.4) for the frr package's unit tests, and the
# recipe's running-config for doctor's (running-config-bgpd-recipe.txt): two
# anycast nodes in AS 64512 (iBGP with each other, the fleet view) peering
# eBGP with one upstream in AS 64500, with docs/frr.md's recipe; then node A's
# answers with the prefix on lo, on the last-resort interface, off, and
# with its upstream session shut down.
set -u
U=awbgpu; A=awbgpa; B=awbgpb; OUT=${1:?usage: capture-bgp.sh OUTDIR (as root)}
mkdir -p $OUT
cleanup() {
  for p in $(cat $OUT/.pids 2>/dev/null); do kill $p 2>/dev/null; done
  sleep 0.5; for ns in $U $A $B; do ip netns del $ns 2>/dev/null; rm -rf /etc/frr/$ns /var/run/frr/$ns; done
  rm -f $OUT/.pids
}
cleanup
for ns in $U $A $B; do ip netns add $ns; ip -n $ns link set lo up; done
link() { # node index
  local n=$1 ns=$2
  ip link add u-n$n netns $U type veth peer name n-u netns $ns
  ip -n $U addr add 198.51.100.$((2*n-2))/31 dev u-n$n; ip -n $U addr add 2001:db8:1:$n::/127 dev u-n$n; ip -n $U link set u-n$n up
  ip -n $ns addr add 198.51.100.$((2*n-1))/31 dev n-u; ip -n $ns addr add 2001:db8:1:$n::1/127 dev n-u; ip -n $ns link set n-u up
  ip -n $ns route add 198.51.100.0/24 via 198.51.100.$((2*n-2))
  ip -n $ns route add 2001:db8:1::/48 via 2001:db8:1:$n::
  ip -n $ns addr add 203.0.113.$n/32 dev lo
  ip -n $ns link add anycast-lr type ifb; ip -n $ns link set anycast-lr up
}
link 1 $A; link 2 $B
ip netns exec $U sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
sleep 2 # DAD on the v6 link addresses
for ns in $U $A $B; do mkdir -p /etc/frr/$ns /var/run/frr/$ns; chown frr:frr /etc/frr/$ns /var/run/frr/$ns; echo "hostname $ns" > /etc/frr/$ns/zebra.conf; : > /etc/frr/$ns/vtysh.conf; done
node_conf() { # index, other node's index
  local n=$1 o=$2
  cat <<C
hostname n$n
ip prefix-list ANYCAST-V4 seq 5 permit 192.0.2.0/24 ge 32
ipv6 prefix-list ANYCAST-V6 seq 5 permit 2001:db8::/48 ge 128
route-map ANYCAST-V4 permit 10
 match ip address prefix-list ANYCAST-V4
 match interface anycast-lr
 set community graceful-shutdown additive
route-map ANYCAST-V4 permit 20
 match ip address prefix-list ANYCAST-V4
route-map ANYCAST-V6 permit 10
 match ipv6 address prefix-list ANYCAST-V6
 match interface anycast-lr
 set community graceful-shutdown additive
route-map ANYCAST-V6 permit 20
 match ipv6 address prefix-list ANYCAST-V6
bgp community-list standard LAST-RESORT seq 5 permit graceful-shutdown
route-map UPSTREAM-OUT permit 10
 match community LAST-RESORT
 set as-path prepend 64512 64512 64512
route-map UPSTREAM-OUT permit 20
route-map FLEET-IN permit 10
 set community no-advertise additive
!
router bgp 64512
 bgp router-id 203.0.113.$n
 no bgp ebgp-requires-policy
 neighbor 198.51.100.$((2*n-2)) remote-as 64500
 neighbor 198.51.100.$((2*n-2)) timers 1 3
 neighbor 198.51.100.$((2*n-2)) timers connect 1
 neighbor 2001:db8:1:$n:: remote-as 64500
 neighbor 2001:db8:1:$n:: timers 1 3
 neighbor 2001:db8:1:$n:: timers connect 1
 neighbor 198.51.100.$((2*o-1)) remote-as 64512
 neighbor 198.51.100.$((2*o-1)) timers 1 3
 neighbor 198.51.100.$((2*o-1)) timers connect 1
 neighbor 2001:db8:1:$o::1 remote-as 64512
 neighbor 2001:db8:1:$o::1 timers 1 3
 neighbor 2001:db8:1:$o::1 timers connect 1
 address-family ipv4 unicast
  redistribute connected route-map ANYCAST-V4
  neighbor 198.51.100.$((2*n-2)) route-map UPSTREAM-OUT out
  neighbor 198.51.100.$((2*o-1)) route-map FLEET-IN in
  no neighbor 2001:db8:1:$n:: activate
  no neighbor 2001:db8:1:$o::1 activate
 exit-address-family
 address-family ipv6 unicast
  redistribute connected route-map ANYCAST-V6
  neighbor 2001:db8:1:$n:: activate
  neighbor 2001:db8:1:$n:: route-map UPSTREAM-OUT out
  neighbor 2001:db8:1:$o::1 activate
  neighbor 2001:db8:1:$o::1 route-map FLEET-IN in
 exit-address-family
!
C
}
node_conf 1 2 > /etc/frr/$A/bgpd.conf
node_conf 2 1 > /etc/frr/$B/bgpd.conf
cat > /etc/frr/$U/bgpd.conf <<C
hostname u
router bgp 64500
 bgp router-id 203.0.113.254
 no bgp ebgp-requires-policy
 neighbor 198.51.100.1 remote-as 64512
 neighbor 198.51.100.3 remote-as 64512
 neighbor 2001:db8:1:1::1 remote-as 64512
 neighbor 2001:db8:1:2::1 remote-as 64512
 neighbor 198.51.100.1 timers 1 3
 neighbor 198.51.100.3 timers 1 3
 neighbor 2001:db8:1:1::1 timers 1 3
 neighbor 2001:db8:1:2::1 timers 1 3
 address-family ipv4 unicast
  maximum-paths 16
  no neighbor 2001:db8:1:1::1 activate
  no neighbor 2001:db8:1:2::1 activate
 exit-address-family
 address-family ipv6 unicast
  maximum-paths 16
  neighbor 2001:db8:1:1::1 activate
  neighbor 2001:db8:1:2::1 activate
 exit-address-family
!
C
for ns in $U $A $B; do
  for d in zebra bgpd; do
    ip netns exec $ns /usr/lib/frr/$d -N $ns -F traditional -A 127.0.0.1 -f /etc/frr/$ns/$d.conf --log file:/tmp/$ns-$d.log &
    echo $! >> $OUT/.pids; sleep 0.3
  done
done
v() { local ns=$1; shift; local a=(); for c in "$@"; do a+=(-c "$c"); done; vtysh -N $ns "${a[@]}"; }
show() { # file, commands on A
  local f=$1; shift
  v $A "$@" > $OUT/$f
}
A4='show bgp ipv4 unicast summary json'; A6='show bgp ipv6 unicast summary json'
P4='show bgp ipv4 unicast 192.0.2.53/32 json'; P6='show bgp ipv6 unicast 2001:db8::53/128 json'
for ns in $A $B; do ip -n $ns addr add 192.0.2.53/32 dev lo; ip -n $ns addr add 2001:db8::53/128 dev lo; done
sleep 8
vtysh -N $A -d bgpd -c 'show running-config' > $OUT/running-config-bgpd-recipe.txt
show bgp4-both-primary.json "$A4" "$P4"
show bgp6-both-primary.json "$A6" "$P6"
v $A 'show bgp ipv4 unicast neighbors 198.51.100.0 advertised-routes json' > $OUT/bgp4-advertised-routes.json
v $U "$P4" > $OUT/upstream-bgp4-both.json
v $U 'show ip route 192.0.2.53/32 json' > $OUT/upstream-route4-both.json
# B fails: to its last-resort interface
ip -n $B addr del 192.0.2.53/32 dev lo; ip -n $B addr add 192.0.2.53/32 dev anycast-lr
ip -n $B addr del 2001:db8::53/128 dev lo; ip -n $B addr add 2001:db8::53/128 dev anycast-lr
sleep 2
show bgp4-other-last-resort.json "$A4" "$P4"
show bgp6-other-last-resort.json "$A6" "$P6"
v $U "$P4" > $OUT/upstream-bgp4-other-lr.json
# A's own prefix at last resort, B's too
ip -n $A addr del 192.0.2.53/32 dev lo; ip -n $A addr add 192.0.2.53/32 dev anycast-lr
sleep 2
show bgp4-both-last-resort.json "$A4" "$P4"
# A withdrawn, B at last resort
ip -n $A addr del 192.0.2.53/32 dev anycast-lr
sleep 2
show bgp4-self-absent.json "$A4" "$P4"
# both withdrawn: not in the table
ip -n $B addr del 192.0.2.53/32 dev anycast-lr
sleep 2
show bgp4-not-in-table.json "$A4" "$P4"
# A back on lo; the upstream session shut down at the upstream
ip -n $A addr add 192.0.2.53/32 dev lo
v $U 'configure terminal' 'router bgp 64500' 'neighbor 198.51.100.1 shutdown' >/dev/null
sleep 4
show bgp4-upstream-down.json "$A4" "$P4"
# no BGP instance at all, and bgpd not running
v $U 'configure terminal' 'no router bgp 64500' >/dev/null
v $U "$A4" "$P4" > $OUT/bgp4-no-instance.json
v $U 'show daemons' > $OUT/show-daemons.txt 2>&1
cleanup
