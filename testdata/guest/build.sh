#!/bin/bash
# Builds the vmfs test guests and caches them; prints the cache directory.
#
#   testdata/guest/build.sh                      build (or reuse) the guests
#   testdata/guest/build.sh --install-test-deps  install every Debian package
#                                                the guests and e2e tests need
#
# Output directory: $VMFS_TEST_CACHE/guest-<hash of this folder's files>
# (VMFS_TEST_CACHE defaults to $HOME/.cache/vmfs-test), holding:
#
#   bootsector.bin                 512-byte BIOS boot sector (boot.asm)
#   bootsector.raw                 1 GiB disk: the boot sector at LBA 0, the
#                                  text it prints at BOOTSECTOR_LBA (900 MiB)
#   linux-bios.raw                 MBR disk: SYSLINUX on FAT + raw data part.
#   linux-uefi.raw                 GPT disk: ESP with syslinux.efi + raw data
#   vmlinuz, initrd.img            the guest's kernel and initramfs
#   vmware/<vm>/<vm>.vmx, .vmdk    the three disks as VMware VMs
#                                  (monolithicSparse VMDK, pvscsi / lsilogic)
#   guest.env                      KEY=value lines (not shell: no quoting)
#
# The data partition (partition 2 of the linux disks) starts with
# "VMFSDATA boot=N"; each boot of the guest prints N and writes N+1.
# Progress goes to stderr; only the directory goes to stdout.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${VMFS_TEST_CACHE:-${HOME:-/root}/.cache/vmfs-test}

build_pkgs=(nasm qemu-utils fdisk dosfstools mtools syslinux syslinux-common
	syslinux-efi cpio util-linux)
boot_pkgs=(qemu-system-x86 ovmf)
test_pkgs=(fuse3 libvirt-daemon libvirt-daemon-system libvirt-daemon-driver-qemu
	libvirt-clients)

log() { echo "guest: $*" >&2; }
die() { echo "guest: error: $*" >&2; exit 1; }

# install_pkgs installs the Debian packages given that are missing, as root;
# as another user it names them and fails.
install_pkgs() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" != 0 ]; then
		die "missing Debian packages: ${missing[*]} (apt-get install them as root)"
	fi
	log "installing ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >&2; then
		apt-get update -q >&2
		apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
	fi
}

if [ "${1:-}" = --install-test-deps ]; then
	install_pkgs "${build_pkgs[@]}" "${boot_pkgs[@]}" "${test_pkgs[@]}"
	exit 0
fi
[ $# -eq 0 ] || die "usage: $0 [--install-test-deps]"

key=$(cat "$here/build.sh" "$here/boot.asm" "$here/init" | sha256sum | cut -c1-16)
out=$cache/guest-$key
if [ -f "$out/guest.env" ]; then
	echo "$out"
	exit 0
fi

mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ -f "$out/guest.env" ]; then # built by another process meanwhile
	echo "$out"
	exit 0
fi

install_pkgs "${build_pkgs[@]}" "${boot_pkgs[@]}"

start=$(date +%s)
tmp=$(mktemp -d "$cache/.build-XXXXXX")
trap 'rm -rf "$tmp"' EXIT

# --- (a) the boot sector disk -------------------------------------------------
far_lba=1843200 # 900 MiB
far_text="VMFS-FAR-SECTOR lba=$far_lba key=$key"
log "boot sector"
nasm -f bin -DFAR_LBA=$far_lba -o "$tmp/bootsector.bin" "$here/boot.asm"
[ "$(stat -c %s "$tmp/bootsector.bin")" = 512 ] || die "boot sector is not 512 bytes"
truncate -s 1G "$tmp/bootsector.raw"
dd if="$tmp/bootsector.bin" of="$tmp/bootsector.raw" conv=notrunc status=none
printf '%s' "$far_text" | dd of="$tmp/bootsector.raw" bs=512 seek=$far_lba conv=notrunc status=none
# some data elsewhere so the VMDK has more than two grains
head -c 1M /dev/urandom | dd of="$tmp/bootsector.raw" bs=1M seek=100 conv=notrunc status=none

# --- (b) the Linux guest ------------------------------------------------------
debs=$cache/debs
mkdir -p "$debs"
kpkg=$(apt-cache depends linux-image-amd64 2>/dev/null | sed -n 's/^ *Depends: \(linux-image-6\.1[^ ]*-amd64\)$/\1/p' | head -n 1)
if [ -z "$kpkg" ]; then
	apt-get update -q >&2
	kpkg=$(apt-cache depends linux-image-amd64 | sed -n 's/^ *Depends: \(linux-image-6\.1[^ ]*-amd64\)$/\1/p' | head -n 1)
fi
[ -n "$kpkg" ] || die "cannot find the linux-image-6.1*-amd64 package"
for p in "$kpkg" busybox-static; do
	if ! ls "$debs/${p}_"*.deb >/dev/null 2>&1; then
		log "downloading $p"
		(cd "$debs" && apt-get download -q "$p" >&2) ||
			(apt-get update -q >&2 && cd "$debs" && apt-get download -q "$p" >&2)
	fi
done
log "unpacking $kpkg and busybox-static"
mkdir -p "$tmp/pkg"
for f in "$debs/${kpkg}_"*.deb "$debs/busybox-static_"*.deb; do
	dpkg -x "$f" "$tmp/pkg"
done
kver=$(ls "$tmp/pkg/lib/modules" | head -n 1)
cp "$tmp/pkg/boot/vmlinuz-$kver" "$tmp/vmlinuz"

# Modules: the disk drivers, their depends= and the crypto back ends that
# crc-t10dif and crc64-rocksoft look up at load time.
want=(ata_piix ahci vmw_pvscsi virtio_pci virtio_blk virtio_scsi sd_mod
	mptsas mptspi sym53c8xx megaraid_sas)
declare -A kofile seen
while IFS= read -r f; do
	n=${f##*/}
	n=${n%%.ko*}
	kofile[${n//-/_}]=$f
done < <(find "$tmp/pkg/lib/modules/$kver/kernel" -name '*.ko*')
order=()
add_module() {
	local m=$1 k=${1//-/_} f deps d
	[ -n "${seen[$k]:-}" ] && return 0
	seen[$k]=1
	f=${kofile[$k]:-}
	[ -n "$f" ] || die "kernel $kver has no module $m"
	case $f in
	*.ko) cp "$f" "$tmp/ko.tmp" ;;
	*.ko.xz) xz -dc "$f" >"$tmp/ko.tmp" ;;
	*.ko.zst) zstd -qdc "$f" >"$tmp/ko.tmp" ;;
	*.ko.gz) gzip -dc "$f" >"$tmp/ko.tmp" ;;
	*) die "unknown module file $f" ;;
	esac
	deps=$(tr '\0' '\n' <"$tmp/ko.tmp" | grep -a '^depends=' | head -n 1 | cut -d= -f2)
	case $k in
	crc_t10dif) deps="crct10dif_generic${deps:+,}$deps" ;;
	crc64_rocksoft) deps="crc64_rocksoft_generic${deps:+,}$deps" ;;
	esac
	mkdir -p "$tmp/initrd/lib/modules"
	mv "$tmp/ko.tmp" "$tmp/initrd/lib/modules/$k.ko"
	for d in ${deps//,/ }; do
		add_module "$d"
	done
	order+=("$k")
}
for m in "${want[@]}"; do
	add_module "$m"
done
log "initramfs: kernel $kver, ${#order[@]} modules"
mkdir -p "$tmp/initrd/bin" "$tmp/initrd/etc" "$tmp/initrd/dev" "$tmp/initrd/proc" \
	"$tmp/initrd/sys" "$tmp/initrd/tmp"
cp "$tmp/pkg/bin/busybox" "$tmp/initrd/bin/busybox"
cp "$here/init" "$tmp/initrd/init"
chmod 0755 "$tmp/initrd/init" "$tmp/initrd/bin/busybox"
printf '%s\n' "${order[@]}" >"$tmp/initrd/etc/modules"
(cd "$tmp/initrd" && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0) | gzip -9 >"$tmp/initrd.img"

cat >"$tmp/syslinux.cfg" <<EOF
SERIAL 0 115200
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL vmlinuz
  INITRD initrd.img
  APPEND console=ttyS0,115200 panic=-1
EOF

# Both disks: 64 MiB, partition 1 = 48 MiB FAT16 at 1 MiB, partition 2 =
# 8 MiB raw data area at 49 MiB.
p1_start=2048 p1_size=98304 p2_start=100352 p2_size=16384
# mkfat runs mkfs.fat quietly (it warns that the image is larger than the
# file system, which is the point of --offset) and shows its output on failure.
mkfat() {
	local out
	out=$(mkfs.fat "$@" 2>&1) || { echo "$out" >&2; die "mkfs.fat $*"; }
}
data_record() {
	printf 'VMFSDATA boot=0\n' | dd of="$1" bs=512 seek=$p2_start conv=notrunc status=none
}

log "BIOS disk"
img=$tmp/linux-bios.raw
truncate -s 64M "$img"
sfdisk -q --no-reread --no-tell-kernel "$img" >&2 <<EOF
label: dos
start=$p1_start, size=$p1_size, type=e, bootable
start=$p2_start, size=$p2_size, type=da
EOF
mkfat -F 16 -n VMFSBIOS -h $p1_start --offset $p1_start "$img" $((p1_size / 2))
syslinux --offset $((p1_start * 512)) --install "$img"
mcopy -i "$img@@$((p1_start * 512))" "$tmp/vmlinuz" "$tmp/initrd.img" "$tmp/syslinux.cfg" ::/
dd if=/usr/lib/syslinux/mbr/mbr.bin of="$img" bs=440 count=1 conv=notrunc status=none
data_record "$img"

log "UEFI disk"
img=$tmp/linux-uefi.raw
truncate -s 64M "$img"
sfdisk -q --no-reread --no-tell-kernel "$img" >&2 <<EOF
label: gpt
start=$p1_start, size=$p1_size, type=C12A7328-F81F-11D2-BA4B-00A0C93EC93B, name="EFI System"
start=$p2_start, size=$p2_size, type=0FC63DAF-8483-4772-8E79-3D69D8477DE4, name="vmfs-data"
EOF
mkfat -F 16 -n VMFSUEFI -h $p1_start --offset $p1_start "$img" $((p1_size / 2))
m="$img@@$((p1_start * 512))"
mmd -i "$m" ::/EFI ::/EFI/BOOT
mcopy -i "$m" /usr/lib/SYSLINUX.EFI/efi64/syslinux.efi ::/EFI/BOOT/BOOTX64.EFI
mcopy -i "$m" /usr/lib/syslinux/modules/efi64/ldlinux.e64 "$tmp/syslinux.cfg" \
	"$tmp/vmlinuz" "$tmp/initrd.img" ::/EFI/BOOT/
data_record "$img"

# --- VMware wrappers ----------------------------------------------------------
# vmx NAME SCSI-DEVICE FIRMWARE
vmx() {
	local name=$1 dev=$2 fw=$3 dir=$tmp/vmware/$1
	mkdir -p "$dir"
	qemu-img convert -q -f raw -O vmdk -o subformat=monolithicSparse,adapter_type=lsilogic \
		"$tmp/$name.raw" "$dir/$name.vmdk"
	cat >"$dir/$name.vmx" <<EOF
.encoding = "UTF-8"
config.version = "8"
virtualHW.version = "14"
displayName = "vmfs-test-$name"
guestOS = "debian12-64"
firmware = "$fw"
memsize = "256"
numvcpus = "1"
scsi0.present = "TRUE"
scsi0.virtualDev = "$dev"
scsi0:0.present = "TRUE"
scsi0:0.deviceType = "scsi-hardDisk"
scsi0:0.fileName = "$name.vmdk"
ethernet0.present = "TRUE"
ethernet0.virtualDev = "vmxnet3"
ethernet0.connectionType = "nat"
ethernet0.addressType = "generated"
serial0.present = "TRUE"
serial0.fileType = "file"
serial0.fileName = "serial.log"
EOF
}
log "VMware VMs"
vmx bootsector lsilogic bios
vmx linux-bios pvscsi bios
vmx linux-uefi lsilogic efi

cat >"$tmp/guest.env" <<EOF
GUEST_KEY=$key
KERNEL_PACKAGE=$kpkg
KERNEL_VERSION=$kver
BOOTSECTOR_LBA=$far_lba
BOOTSECTOR_TEXT=$far_text
DATA_PART_OFFSET=$((p2_start * 512))
BUILD_SECONDS=$(($(date +%s) - start))
EOF
rm -rf "$tmp/pkg" "$tmp/initrd"
chmod 0755 "$tmp"
mv "$tmp" "$out"
trap - EXIT
log "built $out in $(($(date +%s) - start)) s"
echo "$out"
