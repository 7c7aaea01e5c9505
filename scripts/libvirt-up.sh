#!/bin/sh
# Starts virtlogd and libvirtd (system instance) when they do not answer, as
# a machine without systemd needs: the directories they expect, then the
# daemons, then a wait until both answer. Used by CI so that the test
# processes share one libvirtd that none of them owns.
#
# A daemon counts as running only when it answers on its socket: /run may
# outlive the daemons (here it is not a tmpfs), and a socket file left by a
# daemon that died refuses connections. Each daemon replaces its own stale
# socket when it starts.
#
# LIBVIRT_PID_DIR (default /run) is where the daemons started here write
# their pid files (libvirtd.pid, virtlogd.pid): .ci/run gives a private one
# to the daemons it starts in its own mount namespace, so that they neither
# collide with the machine's daemons' pid files nor outlive the run.
set -eu
piddir=${LIBVIRT_PID_DIR:-/run}
virtlogd_up() { virt-admin -c virtlogd:///system version >/dev/null 2>&1; }
libvirtd_up() { virsh -c qemu:///system uri >/dev/null 2>&1; }
wait_up() {
	i=0
	until "$1"; do
		i=$((i + 1))
		if [ "$i" -gt 300 ]; then
			echo "libvirt-up: $2 does not answer after 60 s" >&2
			exit 1
		fi
		sleep 0.2
	done
}
# Give /dev/kvm to group kvm as udev does on a host; without udev it stays
# root-only, and libvirt then probes QEMU again on every define and start.
if [ -c /dev/kvm ] && getent group kvm >/dev/null; then
	chgrp kvm /dev/kvm && chmod g+rw /dev/kvm || true
fi
mkdir -p /run/libvirt/qemu /var/log/libvirt/qemu /var/lib/libvirt/qemu/nvram \
	/var/cache/libvirt/qemu /var/lib/libvirt/images /var/lib/libvirt/boot
if ! virtlogd_up; then
	/usr/sbin/virtlogd --daemon --pid-file "$piddir/virtlogd.pid"
	wait_up virtlogd_up "virtlogd (virtlogd:///system)"
fi
if ! libvirtd_up; then
	/usr/sbin/libvirtd --daemon --pid-file "$piddir/libvirtd.pid"
	wait_up libvirtd_up "libvirtd (qemu:///system)"
fi
echo "libvirt-up: virtlogd and libvirtd answer"
