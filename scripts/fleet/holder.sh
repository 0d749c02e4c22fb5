#!/bin/bash
# The long-lived process of one fleet host. up.sh starts it as
#   ip netns exec plb-hN unshare --mount --uts --propagation private -- holder.sh HOSTDIR NAME IMAGE
# so it runs in the host's network namespace and in a fresh, private mount + UTS namespace.
# It builds the host's view of the filesystem, then becomes `sleep infinity`: sshd, exec.sh and
# the tests enter its namespaces with `nsenter -t <pid>`, so the mounts outlive sshd restarts.
set -euo pipefail

host_dir="$1"
name="$2"
image="$3"

# `ip netns exec` replaced /sys with a sysfs of the new network namespace, which drops every
# mount below /sys (cgroup hierarchies, securityfs, ...). LXC needs them: mount them again with
# the same type and options as in the root namespace (up.sh wrote the list). Mounting a cgroup v1
# hierarchy with the same controllers attaches the existing hierarchy, it does not create one.
while read -r src fstype target opts; do
  mkdir -p "$target" 2>/dev/null || true
  mount -t "$fstype" -o "$opts" "$src" "$target" 2>/dev/null ||
    mount -t "$fstype" "$src" "$target" 2>/dev/null ||
    echo "holder $name: could not mount $fstype on $target (ignored)" >&2
done <"$host_dir/sys-mounts"

# The host's own container store: a loop-mounted image (btrfs or ext4).
mkdir -p /var/lib/lxc /run/lxc /etc/lxc /var/log/lxc /var/cache/lxc
mount -o loop "$image" /var/lib/lxc
# LXC lock files live in /run/lxc: private per host so hosts never share locks.
mount -t tmpfs -o mode=0755,size=16m "plb-run-lxc-$name" /run/lxc
# Per-host LXC defaults (network "empty"), logs and download cache.
mount --bind "$host_dir/etc-lxc" /etc/lxc
mount --bind "$host_dir/log-lxc" /var/log/lxc
mount --bind "$host_dir/cache-lxc" /var/cache/lxc
# root's home of its own, with Debian's stock dotfiles: sshd runs every command through root's login
# shell, and bash sources ~/.bashrc for it; the machine's own /root/.bashrc (pyenv init here) would add
# ~400 ms to every remote command, which no real host pays.
mkdir -p "$host_dir/root-home"
chmod 700 "$host_dir/root-home"
for f in .bashrc .profile; do
  [[ -e "$host_dir/root-home/$f" ]] || cp /etc/skel/"$f" "$host_dir/root-home/$f" 2>/dev/null || true
done
mount --bind "$host_dir/root-home" /root
# The host knows its own name (sudo resolves it) and its peers.
mount --bind "$host_dir/hosts" /etc/hosts
hostname "$name"

cd /
echo "$$" >"$host_dir/holder.pid.tmp"
mv -f "$host_dir/holder.pid.tmp" "$host_dir/holder.pid"
exec -a "plb-holder-$name" sleep infinity
