#!/usr/bin/env bash
# Install the interop lab's peers side by side, from Debian's packages, without starting
# any daemon: strongSwan 5.9.8 (charon-systemd, swanctl, plugins) and Libreswan 4.10, plus
# what the lab itself uses (tcpdump, nftables, iproute2, ping).
#
# Debian's libreswan declares "Conflicts: strongswan-libcharon", so apt removes charon when
# libreswan comes in (and the reverse).  The two coexist fine: different binaries, and the
# lab gives each daemon its own configuration, sockets and databases.  So libreswan is
# installed from a copy of its own .deb whose control file no longer names
# strongswan-libcharon.  Unlike `dpkg -i --force-conflicts`, that leaves apt consistent:
# later `apt-get install`s keep working instead of demanding `apt --fix-broken install`.
#
# Idempotent; FORCE=1 redoes the libreswan step.  Needs root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# libcharon-extauth-plugins: xauth-generic, for the IKEv1 XAUTH cells
STRONGSWAN="charon-systemd strongswan-swanctl libcharon-extra-plugins libcharon-extauth-plugins libstrongswan-standard-plugins"
TOOLS="tcpdump nftables iproute2 iputils-ping libnss3-tools"

installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
libreswan_conflicts() { dpkg-query -W -f='${Conflicts}' libreswan 2>/dev/null | grep -q strongswan-libcharon; }

need=""
for p in $STRONGSWAN $TOOLS; do installed "$p" || need="$need $p"; done
redo_libreswan=""
if [ -n "${FORCE:-}" ] || ! installed libreswan || libreswan_conflicts; then redo_libreswan=1; fi
if [ -z "$need" ] && [ -z "$redo_libreswan" ]; then
    echo "install-peers: strongSwan and Libreswan already installed side by side"
    exit 0
fi

# No daemon may start on this machine while the packages are configured.  Containers
# usually have a policy-rc.d saying so already; elsewhere one is added for the duration.
added_policy=""
cleanup() {
    if [ -n "$added_policy" ]; then rm -f /usr/sbin/policy-rc.d; fi
    if [ -n "${work:-}" ]; then rm -rf "$work"; fi
}
trap cleanup EXIT
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    added_policy=1
fi

apt-get update -q
if [ -n "$need" ]; then
    # libreswan is not named here: apt would remove strongswan-libcharon for it.
    apt-get install -y -q --no-install-recommends $need
fi

if [ -n "$redo_libreswan" ]; then
    work=$(mktemp -d)
    chmod 755 "$work"  # apt's download user must be able to write there
    (cd "$work" && apt-get download -q libreswan)
    dpkg-deb -R "$work"/libreswan_*.deb "$work/pkg"
    sed -i -E '/^Conflicts:/{s/,? *strongswan-libcharon//; s/^Conflicts: *, */Conflicts: /}' \
        "$work/pkg/DEBIAN/control"
    if grep -q strongswan-libcharon "$work/pkg/DEBIAN/control"; then
        echo "install-peers: could not drop the conflict from libreswan's control file" >&2
        exit 1
    fi
    dpkg-deb -b -Zxz "$work/pkg" "$work/libreswan-coinstallable.deb" > /dev/null
    # apt resolves the local package's dependencies from the archive.
    apt-get install -y -q --no-install-recommends --reinstall "$work/libreswan-coinstallable.deb"
fi

# On a systemd machine, keep the packages' services from starting at boot; the lab
# starts its own daemons in its own namespaces.
if command -v systemctl > /dev/null; then
    systemctl disable strongswan.service ipsec.service > /dev/null 2>&1 || true
fi

installed charon-systemd && installed libreswan && ! libreswan_conflicts
apt-get check -q > /dev/null
# Versions from dpkg: never run charon-systemd to ask, it has no --version and would
# start a daemon on this machine.
echo "install-peers: strongSwan $(dpkg-query -W -f='${Version}' charon-systemd) and" \
    "Libreswan $(dpkg-query -W -f='${Version}' libreswan) installed side by side"
