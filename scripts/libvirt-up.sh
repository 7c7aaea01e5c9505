#!/bin/sh
# Starts virtlogd and libvirtd (system instance) when they are not running,
# as a machine without systemd needs: the directories they expect, then the
# daemons, then a wait for the socket. Used by CI so that the test
# processes share one libvirtd that none of them owns.
set -eu
if virsh -c qemu:///system uri >/dev/null 2>&1; then
	exit 0
fi
# Give /dev/kvm to group kvm as udev does on a host; without udev it stays
# root-only, and libvirt then probes QEMU again on every define and start.
if [ -c /dev/kvm ] && getent group kvm >/dev/null; then
	chgrp kvm /dev/kvm && chmod g+rw /dev/kvm || true
fi
mkdir -p /run/libvirt/qemu /var/log/libvirt/qemu /var/lib/libvirt/qemu/nvram \
	/var/cache/libvirt/qemu /var/lib/libvirt/images /var/lib/libvirt/boot
[ -S /run/libvirt/virtlogd-sock ] || /usr/sbin/virtlogd --daemon
/usr/sbin/libvirtd --daemon
i=0
until virsh -c qemu:///system uri >/dev/null 2>&1; do
	i=$((i + 1))
	if [ "$i" -gt 300 ]; then
		echo "libvirtd does not answer on qemu:///system" >&2
		exit 1
	fi
	sleep 0.2
done
