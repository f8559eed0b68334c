#!/bin/sh
# A lab guest's life: network, naming, sensor, FTP server, then the scripted user; then it
# waits for the lab's commands on ttyS1 (`clock`, `stop`). On `stop` it waits for the fleet
# backlog to drain, exports the graph, stops the sensor and writes its results (a tar) to
# its disk. Every step says VTLAB on the console; a failure says which step and why.
. /lab/env
say() { echo "VTLAB agent $HOST $(now) $*"; }
fail() {
	say FAILED $*
	for f in /lab/log/*.log; do
		[ -f "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }
	done
	exit 1
}
sensor() { vtrail-sensor --config /lab/sensor.toml "$@"; }
hostname $HOST
mkdir -p /lab/log /lab/out /lab/docs /run/vtrail /var/run/vsftpd/empty @INCOMING@
ip link set eth0 up && ip addr add $IP/@BITS@ dev eth0 || fail network: cannot configure eth0 with $IP
[ "$(cat /sys/block/vda/serial 2>/dev/null)" = "$SERIAL" ] || fail disk: /sys/block/vda/serial is not $SERIAL
say booted kernel=$(uname -r) ip=$IP serial=$SERIAL

vtrail-ddns update --server $DNS --zone $ZONE --key-file /lab/ddns.key --interface eth0 >/lab/log/ddns.log 2>&1 &
# Not through the function: a backgrounded function is a subshell, and its pid (not the
# sensor's) would get the SIGTERM at the end.
vtrail-sensor --config /lab/sensor.toml run >/lab/log/sensor.log 2>&1 &
sensor_pid=$!
i=0
until sensor status --json >/lab/status.json 2>/dev/null; do
	kill -0 $sensor_pid 2>/dev/null || fail sensor: vtrail-sensor run exited
	i=$((i + 1))
	[ $i -gt @SENSOR_START_S@ ] && fail sensor: not answering after @SENSOR_START_S@ s
	sleep 1
done
grep -q "\"$STRATEGY\"" /lab/status.json || fail sensor: strategy is not $STRATEGY: $(head -c 300 /lab/status.json)
say sensor-up after=${i}s

chown ftp @INCOMING@ && chmod 755 /srv/ftp
/usr/sbin/vsftpd /lab/vsftpd.conf >/lab/log/vsftpd.log 2>&1 &
i=0
until netstat -ltn 2>/dev/null | grep -q ':21 '; do
	i=$((i + 1))
	[ $i -gt 20 ] && fail vsftpd: not listening on port 21
	sleep 1
done
i=0
until vtrail-ddns lookup --server $DNS --zone $ZONE $IP 2>/dev/null | grep -q "$MYID"; do
	i=$((i + 1))
	[ $i -gt 60 ] && fail naming: $IP not published as $MYID after 60 s
	sleep 1
done
i=0
until sensor status --json 2>/dev/null | tr -d ' \n' | grep -q '"connected":true'; do
	i=$((i + 1))
	[ $i -gt 60 ] && fail fleet: not connected to $NATS after 60 s
	sleep 1
done
say ready id=$MYID strategy=$STRATEGY

/lab/user.sh &
user_pid=$!
stty -F /dev/ttyS1 -echo 2>/dev/null
# Opened once: a tty closed between two reads may drop what arrived in between.
exec 3</dev/ttyS1
while read -r cmd <&3; do
	case "$cmd" in
	clock) say clock ;;
	stop) break ;;
	esac
done
say stopping
kill $user_pid 2>/dev/null
i=0
until sensor status --json 2>/dev/null | tr -d ' \n' | grep -q '"backlog_records":0[,}]'; do
	i=$((i + 1))
	[ $i -gt 60 ] && { say fleet backlog not drained after 60 tries; break; }
	sleep 1
done
say fleet-drained tries=$i
sensor status --json >/lab/out/status.json 2>&1
sensor export --format json -o /lab/out/dump.jsonl || say export failed
kill -TERM $sensor_pid
wait $sensor_pid
say sensor-stopped rc=$?
cp /lab/log/*.log /lab/out/
tar -cf /dev/vda -C /lab/out . && sync && say results-written
