#!/bin/bash
# Builds the convertible test guest of `vmfs convert` and caches it; prints
# the cache directory.
#
#   testdata/convert-guest/build.sh
#
# A real, small Debian 12 made with debootstrap from Debian's archive, as it
# would have been installed on VMware: GRUB on its disk (BIOS), one ext4
# root partition, an initramfs holding VMware's devices only (vmw_pvscsi,
# vmxnet3; no virtio_blk), /etc/initramfs-tools saying MODULES=dep, and a
# static address on its NIC under the name VMware gave it (ens192). At boot
# it prints what it sees (root device, each NIC's name, MAC, driver and
# addresses) on its serial port and powers off (report.sh).
#
# Output directory: $VMFS_TEST_CACHE/convert-guest-<hash of this folder's
# files> (VMFS_TEST_CACHE defaults to $HOME/.cache/vmfs-test), holding:
#
#   vmware/debian12/debian12.vmx, .vmdk  the guest as a VMware VM (pvscsi,
#                                        vmxnet3 with a static MAC, BIOS)
#   guest.env                            KEY=value lines (not shell)
#
# Needs root (debootstrap, chroot), network access to deb.debian.org (or
# $DEBIAN_MIRROR), and the Debian packages debootstrap, qemu-utils, fdisk,
# e2fsprogs. Progress goes to stderr; only the directory goes to stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${VMFS_TEST_CACHE:-${HOME:-/root}/.cache/vmfs-test}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

# What the guest is: the tests read these back from guest.env.
nic_name=ens192
nic_mac=00:50:56:3f:00:19
nic_addr=192.0.2.19/24
disk_size=3G

log() { echo "convert-guest: $*" >&2; }
die() { echo "convert-guest: error: $*" >&2; exit 1; }

key=$(cat "$here"/* | sha256sum | cut -c1-16)
out=$cache/convert-guest-$key
if [ -f "$out/guest.env" ]; then
	echo "$out"
	exit 0
fi
[ "$(id -u)" = 0 ] || die "building the guest needs root (debootstrap, chroot)"
for c in debootstrap qemu-img sfdisk mkfs.ext4 chroot; do
	command -v "$c" >/dev/null || die "missing $c (Debian packages debootstrap qemu-utils fdisk e2fsprogs)"
done

mkdir -p "$cache"
exec 9>"$cache/.lock-convert"
flock 9
if [ -f "$out/guest.env" ]; then # built by another process meanwhile
	echo "$out"
	exit 0
fi

start=$(date +%s)
tmp=$(mktemp -d "$cache/.build-convert-XXXXXX")
root=$tmp/root
cleanup() {
	for m in "$root/proc" "$root/sys" "$root/dev/pts" "$root/dev"; do
		mountpoint -q "$m" 2>/dev/null && umount -l "$m"
	done
	rm -rf "$tmp"
}
trap cleanup EXIT

# debootstrap's own packages are cached between builds (a changed script
# rebuilds the guest, not the downloads).
debs=$cache/convert-debs
mkdir -p "$debs"
log "debootstrap bookworm from $mirror"
debootstrap --variant=minbase --cache-dir="$debs" \
	--include=linux-image-amd64,grub-pc-bin,grub2-common,initramfs-tools,systemd-sysv,udev,ifupdown,iproute2,kmod,e2fsprogs \
	bookworm "$root" "$mirror" >&2

in_root() { chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive "$@"; }
mount -t proc proc "$root/proc"
mount -t sysfs sys "$root/sys"
mount --bind /dev "$root/dev"

kver=$(ls "$root/lib/modules" | head -n 1)
[ -n "$kver" ] || die "no kernel in the guest"
uuid=$(cat /proc/sys/kernel/random/uuid)

log "configuring the guest (kernel $kver)"
echo vmfs-convert-guest >"$root/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 vmfs-convert-guest\n' >"$root/etc/hosts"
printf 'UUID=%s / ext4 errors=remount-ro 0 1\n' "$uuid" >"$root/etc/fstab"
cat >"$root/etc/network/interfaces" <<IFACES
# The guest's network as it was configured on VMware.
auto lo
iface lo inet loopback

auto $nic_name
iface $nic_name inet static
	address $nic_addr
IFACES
install -m 0755 "$here/report.sh" "$root/usr/local/sbin/vmfs-report"
cat >"$root/etc/systemd/system/vmfs-report.service" <<UNIT
[Unit]
Description=vmfs test: report the devices and the network on the serial port, then power off
After=networking.service network-online.target
Wants=network-online.target

[Service]
Type=oneshot
ExecStart=/usr/local/sbin/vmfs-report
StandardOutput=journal+console

[Install]
WantedBy=multi-user.target
UNIT
ln -sf /etc/systemd/system/vmfs-report.service "$root/etc/systemd/system/multi-user.target.wants/vmfs-report.service"
# Nothing waits for a network the test host does not give (no DHCP here).
ln -sf /dev/null "$root/etc/systemd/system/systemd-networkd-wait-online.service"
passwd -R "$root" -d root >/dev/null 2>&1 || true

# The initramfs a VMware install makes with MODULES=dep: the drivers of its
# disk (pvscsi, sd_mod, ext4) and NIC, nothing for virtio. MODULES=dep
# cannot look at VMware's devices from this chroot, so the image is built
# from that list, and the guest's config keeps saying dep, as such a
# guest's does.
conf=$root/etc/initramfs-tools
cp "$conf/modules" "$tmp/modules.orig"
sed -i 's/^MODULES=.*/MODULES=list/' "$conf/initramfs.conf"
printf '%s\n' vmw_pvscsi sd_mod ext4 crc32c_generic vmxnet3 >>"$conf/modules"
in_root mkinitramfs -o "/boot/initrd.img-$kver" "$kver" >&2
sed -i 's/^MODULES=.*/MODULES=dep/' "$conf/initramfs.conf"
cp "$tmp/modules.orig" "$conf/modules"
in_root lsinitramfs "/boot/initrd.img-$kver" >"$tmp/initrd.list"
if grep -q '/virtio_blk\.ko' "$tmp/initrd.list"; then
	die "the initramfs holds virtio_blk"
fi
grep -q '/vmw_pvscsi\.ko' "$tmp/initrd.list" || { grep '\.ko' "$tmp/initrd.list" | head -20 >&2; die "the initramfs lacks vmw_pvscsi"; }

# GRUB, as grub-install would set it up on a BIOS disk (without a loop
# device: boot.img in the MBR, core.img in the gap after it).
cat >"$root/etc/default/grub" <<GRUB
GRUB_DEFAULT=0
GRUB_TIMEOUT=0
GRUB_DISTRIBUTOR=Debian
GRUB_CMDLINE_LINUX_DEFAULT=""
GRUB_CMDLINE_LINUX="console=ttyS0,115200 rootdelay=30 panic=5"
GRUB_TERMINAL=serial
GRUB_SERIAL_COMMAND="serial --unit=0 --speed=115200"
GRUB
mkdir -p "$root/boot/grub/i386-pc"
cp "$root"/usr/lib/grub/i386-pc/*.mod "$root"/usr/lib/grub/i386-pc/*.lst "$root/boot/grub/i386-pc/"
cat >"$root/boot/grub/grub.cfg" <<CFG
# as grub-mkconfig writes it for this guest, short
insmod part_msdos
insmod ext2
serial --unit=0 --speed=115200
terminal_input serial
terminal_output serial
set timeout=0
search --no-floppy --fs-uuid --set=root $uuid
menuentry 'Debian GNU/Linux' --class debian --class gnu-linux --class os \$menuentry_id_option 'gnulinux-simple-$uuid' {
	insmod part_msdos
	insmod ext2
	search --no-floppy --fs-uuid --set=root $uuid
	echo	'Loading Linux $kver ...'
	linux	/boot/vmlinuz-$kver root=UUID=$uuid ro console=ttyS0,115200 rootdelay=30 panic=5
	echo	'Loading initial ramdisk ...'
	initrd	/boot/initrd.img-$kver
}
CFG
in_root grub-mkimage -O i386-pc -o /tmp/core.img -p '(hd0,msdos1)/boot/grub' biosdisk part_msdos ext2 search_fs_uuid
mv "$root/tmp/core.img" "$tmp/core.img"
cp "$root/usr/lib/grub/i386-pc/boot.img" "$tmp/boot.img"

for m in "$root/proc" "$root/sys" "$root/dev"; do umount "$m"; done
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*_Packages

log "disk image"
img=$tmp/debian12.raw
truncate -s "$disk_size" "$img"
sfdisk -q --no-reread --no-tell-kernel "$img" >&2 <<PART
label: dos
start=2048, type=83, bootable
PART
start_sector=2048
sectors=$(( $(stat -c %s "$img") / 512 - start_sector ))
mkfs.ext4 -q -F -U "$uuid" -L debian-root -E offset=$((start_sector * 512)) -d "$root" "$img" $((sectors / 2))k >&2
dd if="$tmp/boot.img" of="$img" bs=440 count=1 conv=notrunc status=none
core_sectors=$(( ($(stat -c %s "$tmp/core.img") + 511) / 512 ))
[ "$core_sectors" -lt "$start_sector" ] || die "core.img ($core_sectors sectors) does not fit before the partition"
dd if="$tmp/core.img" of="$img" bs=512 seek=1 conv=notrunc status=none
rm -rf "$root"

log "VMware VM"
dir=$tmp/vmware/debian12
mkdir -p "$dir"
qemu-img convert -q -f raw -O vmdk -o subformat=monolithicSparse,adapter_type=lsilogic "$img" "$dir/debian12.vmdk"
rm -f "$img"
cat >"$dir/debian12.vmx" <<VMX
.encoding = "UTF-8"
config.version = "8"
virtualHW.version = "14"
displayName = "debian12"
guestOS = "debian12-64"
firmware = "bios"
memsize = "1024"
numvcpus = "1"
scsi0.present = "TRUE"
scsi0.virtualDev = "pvscsi"
scsi0:0.present = "TRUE"
scsi0:0.deviceType = "scsi-hardDisk"
scsi0:0.fileName = "debian12.vmdk"
ethernet0.present = "TRUE"
ethernet0.virtualDev = "vmxnet3"
ethernet0.connectionType = "nat"
ethernet0.addressType = "static"
ethernet0.address = "$nic_mac"
serial0.present = "TRUE"
serial0.fileType = "file"
serial0.fileName = "serial.log"
VMX

cat >"$tmp/guest.env" <<ENV
GUEST_KEY=$key
KERNEL_VERSION=$kver
ROOT_UUID=$uuid
NIC_NAME=$nic_name
NIC_MAC=$nic_mac
NIC_ADDR=$nic_addr
BUILD_SECONDS=$(($(date +%s) - start))
ENV
chmod 0755 "$tmp"
mv "$tmp" "$out"
trap - EXIT
log "built $out in $(($(date +%s) - start)) s"
echo "$out"
