#!/usr/bin/env bash
# deps.sh installs the system tools the tests talk to, when they are missing:
# libnfs-utils (nfs-ls, nfs-cp, nfs-cat), rpcbind (rpcinfo), nfs-common
# (showmount), iproute2 (ip), strace, NFS-Ganesha (the bench's comparison
# peer), QEMU, a static busybox and file(1) (kerneltest boots Debian's kernel
# as an NFS client), chromium (the bench HTML report test), dovecot-core
# (doveadm reads the Maildirs and maildirsize the client writes),
# exim4-daemon-light (the documented Exim transport runs in a test), and tshark,
# linux-perf and bmake (optional). It is idempotent
# and returns at once when everything is present; apt-get update runs at most
# once, and only when something must be installed.
set -euo pipefail

# command -> Debian package
required=(
	"nfs-ls:libnfs-utils"
	"nfs-cp:libnfs-utils"
	"nfs-cat:libnfs-utils"
	"rpcinfo:rpcbind"
	"showmount:nfs-common"
	"ip:iproute2"
	"strace:strace"
	"ganesha.nfsd:nfs-ganesha"
	"/usr/lib/x86_64-linux-gnu/ganesha/libfsalvfs.so:nfs-ganesha-vfs"
	"qemu-system-x86_64:qemu-system-x86"
	"dpkg=busybox-static:busybox-static"
	"file:file"
	"chromium:chromium"
	"doveadm:dovecot-core"
	"exim4:exim4-daemon-light"
	"setpriv:util-linux"
	"nft:nftables"
)
optional=(
	"tshark:tshark"
	"perf:linux-perf"
	"bmake:bmake"
)

have() {
	case "$1" in
	/*) [ -e "$1" ] && return 0 ;;
	dpkg=*) # a package whose files have other names (busybox-static vs busybox)
		[ "$(dpkg-query -W -f='${Status}' "${1#dpkg=}" 2>/dev/null)" = "install ok installed" ] && return 0
		return 1 ;;
	esac
	command -v "$1" >/dev/null 2>&1 && return 0
	# rpcinfo, showmount and ip live in sbin, which a non-login PATH may lack.
	local d
	for d in /usr/sbin /sbin /usr/bin /bin; do
		[ -x "$d/$1" ] && return 0
	done
	return 1
}

missing_required=()
missing_optional=()
for pair in "${required[@]}"; do
	have "${pair%%:*}" || missing_required+=("${pair#*:}")
done
for pair in "${optional[@]}"; do
	have "${pair%%:*}" || missing_optional+=("${pair#*:}")
done

if [ ${#missing_required[@]} -eq 0 ] && [ ${#missing_optional[@]} -eq 0 ]; then
	exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
	if [ ${#missing_required[@]} -gt 0 ]; then
		echo "deps.sh: missing packages: ${missing_required[*]} (run as root to install them)" >&2
		exit 1
	fi
	echo "deps.sh: optional package not installed: ${missing_optional[*]}" >&2
	exit 0
fi

export DEBIAN_FRONTEND=noninteractive
# Deduplicate (libnfs-utils appears once per tool).
mapfile -t pkgs < <(printf '%s\n' "${missing_required[@]}" | sort -u | sed '/^$/d')
echo "deps.sh: installing ${pkgs[*]} ${missing_optional[*]}" >&2
apt-get update -qq
if [ ${#pkgs[@]} -gt 0 ]; then
	apt-get install -y -qq "${pkgs[@]}"
fi
if [ ${#missing_optional[@]} -gt 0 ]; then
	# tshark asks whether non-root users may capture; preseed "no".
	echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections || true
	apt-get install -y -qq --no-install-recommends "${missing_optional[@]}" ||
		echo "deps.sh: optional ${missing_optional[*]} could not be installed; continuing" >&2
fi
