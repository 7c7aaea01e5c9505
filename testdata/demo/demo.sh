#!/bin/bash
# vmfs demo (make demo): mount the test guest's VMware VM as a KVM/QEMU VM
# and boot it from the mount, without converting anything first.
#
#   1. builds bin/vmfs and (cached) the test guest and its VMware VM
#   2. vmfs mount --daemon --to qemu: the mount shows <name>.sh (a QEMU
#      command line) and <name>-disk0.<format>, computed from the .vmdk
#   3. runs <name>.sh under TCG; the guest's serial console is printed live
#   4. unmounts (also on Ctrl-C or failure) and shows the source unchanged
#
# Environment: VMFS_DEMO_VM=linux-bios|linux-uefi|bootsector (default
# linux-bios), VMFS_DEMO_FORMAT=qcow2|raw|... (default qcow2, raw when this
# build lacks qcow2), VMFS_TEST_CACHE (guest cache, see build.sh).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
vm=${VMFS_DEMO_VM:-linux-bios}
format=${VMFS_DEMO_FORMAT:-qcow2}

say() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

# Packages: the guest build installs its own; the demo adds FUSE.
if [ "$(id -u)" = 0 ]; then
	missing=()
	for p in fuse3 qemu-system-x86 qemu-utils ovmf; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
	done
	if [ ${#missing[@]} -gt 0 ]; then
		say "installing ${missing[*]}"
		export DEBIAN_FRONTEND=noninteractive
		apt-get install -y -q --no-install-recommends "${missing[@]}" ||
			{ apt-get update -q && apt-get install -y -q --no-install-recommends "${missing[@]}"; }
	fi
fi

say "building vmfs"
(cd "$root" && go build -o bin/vmfs ./cmd/vmfs)
vmfs=$root/bin/vmfs

say "building the test guest (cached)"
guest=$("$root/testdata/guest/build.sh")
[ -d "$guest/vmware/$vm" ] || { echo "no VM $vm in $guest/vmware" >&2; exit 1; }

work=$(mktemp -d /tmp/vmfs-demo.XXXXXX)
chmod 0711 "$work"
mnt=$work/mnt
mkdir -p "$mnt"
qemu_pid=
cleanup() {
	set +e
	[ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null && wait "$qemu_pid" 2>/dev/null
	if grep -qs " $mnt " /proc/self/mounts; then
		say "unmounting"
		"$vmfs" unmount "$mnt" || fusermount3 -u -z "$mnt"
	fi
	rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

cp -r "$guest/vmware/$vm" "$work/src"
say "source VM: $work/src"
ls -l "$work/src"
sums_before=$(cd "$work/src" && sha256sum ./*)

say "vmfs inspect"
"$vmfs" inspect "$work/src/$vm.vmx"

mount_args=(mount --daemon --to qemu --domain-type qemu --overlay "$work/overlay")
say "vmfs ${mount_args[*]} --format $format $work/src/$vm.vmx $mnt"
if ! out=$("$vmfs" "${mount_args[@]}" --format "$format" "$work/src/$vm.vmx" "$mnt" 2>&1); then
	echo "$out"
	case $out in
	*"not supported"*)
		format=raw
		say "falling back to --format raw"
		"$vmfs" "${mount_args[@]}" --format raw "$work/src/$vm.vmx" "$mnt"
		;;
	*) exit 1 ;;
	esac
else
	echo "$out"
fi
ls -l "$mnt"
script=$(ls "$mnt"/*.sh)
say "$script"
cat "$script"

say "booting from the mount (TCG; serial console follows)"
start=$(date +%s)
"$script" -no-reboot </dev/null &
qemu_pid=$!
wait "$qemu_pid" || true
qemu_pid=
say "guest stopped after $(($(date +%s) - start)) s"

"$vmfs" unmount "$mnt"
sums_after=$(cd "$work/src" && sha256sum ./*)
if [ "$sums_before" = "$sums_after" ]; then
	say "source unchanged (sha256 of every file)"
else
	say "SOURCE CHANGED"
	diff <(echo "$sums_before") <(echo "$sums_after") || true
	exit 1
fi
