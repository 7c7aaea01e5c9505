#!/bin/sh
# vmfs test guest: says on the serial port what this boot found, then
# powers off. Lines start with VMFS-CONVERT- for the tests to find.
{
	root=$(findmnt -no SOURCE /)
	# The drivers from the disk up to its controller (sd, vmw_pvscsi; virtio_blk, virtio_pci).
	drivers=
	d=$(readlink -f "/sys/class/block/${root#/dev/}")
	while [ "$d" != / ] && [ -n "$d" ]; do
		[ -e "$d/driver" ] && drivers="$drivers${drivers:+,}$(basename "$(readlink -f "$d/driver")")"
		d=$(dirname "$d")
	done
	echo "VMFS-CONVERT-ROOT dev=$root drivers=$drivers"
	for d in /sys/class/net/*; do
		n=${d##*/}
		[ "$n" = lo ] && continue
		drv=$(basename "$(readlink -f "$d/device/driver")")
		addrs=$(ip -o -4 addr show dev "$n" | awk '{print $4}' | paste -sd, -)
		echo "VMFS-CONVERT-NIC name=$n mac=$(cat "$d/address") driver=$drv addr=${addrs:-none}"
	done
	echo "VMFS-CONVERT-DONE"
} >/dev/ttyS0 2>&1
systemctl --no-block poweroff
