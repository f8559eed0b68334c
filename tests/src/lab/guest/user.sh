#!/bin/sh
# The lab's scripted user on this guest: opens what arrives over FTP after a delay, as a
# person opening an attachment would (a carrier's user never does); documents are never
# opened. On the worm's arrival it first moves to its new address if it is the host that
# moves, then sends its own documents. Everything it does is logged, with this guest's
# clock, for the ground truth.
. /lab/env
runs=@RUNS@
delay=@DELAY@
move_to=@MOVE_TO@
old_ip=@OLD_IP@
docs="@DOCS@"
say() {
	line="$(now) $*"
	echo "$line" >>/lab/log/user.log
	echo "VTLAB user $HOST $line"
}
# Moves eth0 to $move_to and waits (at most 60 s) until DNS names this host there.
move() {
	say moving from=$old_ip to=$move_to
	echo 1 >/proc/sys/net/ipv4/conf/eth0/promote_secondaries
	ip addr add $move_to/@BITS@ dev eth0 && ip addr del $old_ip/@BITS@ dev eth0 || say move-failed
	i=0
	while [ $i -lt 60 ]; do
		if vtrail-ddns lookup --server $DNS --zone $ZONE $move_to 2>/dev/null | grep -q "$MYID"; then
			say moved to=$move_to
			return
		fi
		sleep 1
		i=$((i + 1))
	done
	say move-unpublished to=$move_to
}
send_docs() {
	for d in $docs; do
		ip=${d%%:*}
		name=${d#*:}
		echo "notes from $HOST, nothing to run" >/lab/docs/$name
		if ftpput -u anonymous -p user@lab "$ip" "incoming/$name" /lab/docs/$name; then
			say sent-doc to=$ip name=$name
		else
			say send-doc-failed to=$ip name=$name
		fi
	done
}
seen=" "
worm_seen=no
while :; do
	for f in @INCOMING@/*; do
		[ -f "$f" ] || continue
		n=${f##*/}
		case "$seen" in *" $n "*) continue ;; esac
		seen="$seen$n "
		sleep 1 # vsftpd may still be writing it
		say arrived name=$n
		case "$n" in
		*.sh)
			if [ $worm_seen = no ]; then
				worm_seen=yes
				[ -n "$move_to" ] && move
				send_docs
			fi
			if [ $runs = yes ]; then
				sleep $delay
				say opening name=$n
				chmod 755 "$f"
				"$f"
				say closed name=$n rc=$?
			else
				say ignored name=$n
			fi
			;;
		esac
	done
	sleep 1
done
