#!/bin/sh
# Installs the Debian packages given as arguments when some are missing.
# Needs root for the install; without root it only says what is missing.
#
# The install never asks: a configuration file the admin changed (say
# /etc/libvirt/qemu.conf edited before the package was configured) is kept,
# and a dpkg an earlier run left half-configured is finished first. apt's
# output goes to a temporary log whose end is shown when a step fails.
set -eu
missing=""
for p in "$@"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
	echo "missing Debian packages:$missing (run as root, or: sudo apt-get install$missing)" >&2
	exit 1
fi
echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
log=$(mktemp /tmp/vmfs-install-deps.XXXXXX)
trap 'rm -f "$log"' EXIT
keep="-o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold"

# run STEP CMD...: runs CMD with its output in the log; on failure says
# which step failed, shows the log's last lines and exits.
run() {
	step=$1
	shift
	if ! "$@" >"$log" 2>&1; then
		echo "install-deps: $step failed; its last lines:" >&2
		tail -n 25 "$log" >&2
		exit 1
	fi
}

run "dpkg --configure -a" dpkg --force-confdef --force-confold --configure -a
run "apt-get update" apt-get update -q
# shellcheck disable=SC2086
run "apt-get install$missing" apt-get install -y -q $keep $missing
