#!/usr/bin/env python3
"""Real-kernel lab: run a shell script as root inside a QEMU guest whose kernel has ESP.

The host kernel has XFRM but no ESP/AH/IPCOMP, so tests that need the kernel to
encrypt packets boot Debian's ``linux-image-amd64`` under QEMU (software emulation:
nested KVM hangs on this host).  The guest sees the host's root file system
read-only over 9p with a tmpfs overlay on top, so every host program (the
project's venv, iproute2, tcpdump, strongSwan, ...) runs inside unchanged, and
every write inside vanishes at power-off.

Results come back through a second, writable 9p share (a host temp dir mounted at
``/run/lab`` in the guest): the script's output goes to ``out`` and its exit status
to ``rc``.  The serial console is kept only for debugging and boot timing.

    result = run_in_guest("modprobe esp4 && ip xfrm state")
    result.returncode, result.output, result.console

CLI::

    python tests/lab/qemu_lab.py check
    python tests/lab/qemu_lab.py run -- 'ip -s xfrm state'
"""

from __future__ import annotations

import argparse
import ctypes
import gzip
import hashlib
import io
import lzma
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

QEMU = "qemu-system-x86_64"
# From busybox-static: it must be static, it runs before any root with libraries exists.
BUSYBOX = Path("/bin/busybox")
CACHE_DIR = Path(os.environ.get("PYSWAN_LAB_CACHE", "/var/tmp/pyswan-lab"))

# What the initramfs needs to reach the host's root: virtio-pci -> 9p, plus overlay.
# Their dependencies (virtio_ring, netfs, fscache, 9pnet, ...) are resolved from
# modules.dep, which yields the order kernel-lab.md found by hand.
BOOT_MODULES = ("virtio_pci", "9pnet_virtio", "9p", "overlay")

# Loaded inside the guest before the script runs; some may be built in or absent.
IPSEC_MODULES = (
    "esp4", "esp6", "xfrm_user", "ah4", "ah6", "xfrm_ipcomp", "ipcomp", "ipcomp6",
    "authenc", "authencesn", "gcm", "ccm", "chacha20poly1305", "seqiv", "echainiv",
    "xfrm_interface",
)  # fmt: skip

# Extra kernel arguments, for debugging a boot: PYSWAN_LAB_KERNEL_ARGS="loglevel=7".
KERNEL_ARGS = os.environ.get("PYSWAN_LAB_KERNEL_ARGS", "")
READY_MARK = "pyswan-lab: guest shell ready"
# 9p tuning: a large msize makes Python imports over 9p several times faster;
# cache=loose is safe for the root because the guest mounts it read-only.
ROOT_9P_OPTS = "trans=virtio,version=9p2000.L,msize=262144,cache=loose,ro"
SHARE_9P_OPTS = "trans=virtio,version=9p2000.L,msize=262144"

# /init of the initramfs (busybox sh).  It only builds the root and hands over
# to /run/lab/stage2.sh, which the host writes fresh for every run.
INIT_SCRIPT = f"""#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
die() {{ echo "pyswan-lab: initramfs: $*"; echo o > /proc/sysrq-trigger; sleep 60; }}
for m in $(cat /modules.order); do
    insmod "/modules/$m.ko" || echo "pyswan-lab: insmod $m failed"
done
mkdir -p /ro /rw /newroot
mount -t 9p -o {ROOT_9P_OPTS} root /ro || die "cannot mount host root over 9p"
mount -t tmpfs -o mode=0755 tmpfs /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/ro,upperdir=/rw/upper,workdir=/rw/work overlay /newroot \\
    || die "cannot mount overlay"
# A fresh /run: the host's pid files and sockets must not leak into the guest.
mount -t tmpfs -o mode=0755 tmpfs /newroot/run
mkdir -p /newroot/run/lab
mount -t 9p -o {SHARE_9P_OPTS} lab /newroot/run/lab || die "cannot mount the lab share"
for d in proc sys dev; do mount --move /$d /newroot/$d || echo "pyswan-lab: move $d failed"; done
exec switch_root /newroot /bin/sh /run/lab/stage2.sh
"""

# Stage 2 runs as PID 1 on the overlay root with the host's /bin/sh (dash).
# Placeholders are filled with shlex-quoted values by _stage2().
STAGE2_TEMPLATE = """#!/bin/sh
export PATH={path}
export HOME=/root LANG=C.UTF-8 TERM=dumb
{env}
# /init moved these here; remount any that did not make it.
[ -e /proc/self ] || mount -t proc proc /proc
[ -d /sys/kernel ] || mount -t sysfs sysfs /sys
[ -e /dev/null ] || mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/pts && mount -t devpts -o newinstance,ptmxmode=0666 devpts /dev/pts
mkdir -p /dev/shm && mount -t tmpfs tmpfs /dev/shm
[ -e /var/run ] || ln -s /run /var/run
echo pyswan-lab > /proc/sys/kernel/hostname
ip link set lo up
{mounts}
# One modprobe for all: it goes on past missing modules, and one process is much
# faster than sixteen under emulation.  Then sort them into loaded/builtin/missing.
modprobe -a -q {modules} 2>/dev/null
: > /run/lab/modules
for m in {modules}; do
    if grep -q "^$m " /proc/modules; then s=loaded
    elif grep -q "/$m.ko" /lib/modules/$(uname -r)/modules.builtin; then s=builtin
    else s=missing; fi
    echo "$m $s" >> /run/lab/modules
done
echo "{ready}"
cd {cwd} 2>/dev/null || cd /
# To a file, not a pipe: daemons the script leaves running would hold a pipe open.
{shell} /run/lab/script < /dev/null > /run/lab/out 2>&1
echo $? > /run/lab/rc.tmp && mv /run/lab/rc.tmp /run/lab/rc
sync
echo "pyswan-lab: script exited, powering off"
echo o > /proc/sysrq-trigger
sleep 60
"""


class LabError(RuntimeError):
    """The guest could not be booted or did not report a result."""

    def __init__(self, message: str, console: str = "", output: str = "") -> None:
        tail = "\n".join(console.splitlines()[-40:])
        super().__init__(f"{message}\n--- console tail ---\n{tail}" if tail else message)
        self.console = console
        self.output = output


class LabTimeout(LabError):
    """The guest ran past its timeout and was killed."""


@dataclass
class GuestResult:
    returncode: int
    output: str  # the script's stdout and stderr, interleaved
    console: str = ""  # the serial console (kernel log, init messages): for debugging
    boot_seconds: float = 0.0  # QEMU start until the script starts (modules loaded)
    total_seconds: float = 0.0  # QEMU start until QEMU exited
    modules: dict[str, str] = field(default_factory=dict)  # name -> loaded|builtin|missing


# ---------------------------------------------------------------- kernel and initramfs


def _version_key(version: str) -> list[int | str]:
    return [int(p) if p.isdigit() else p for p in re.split(r"[.-]", version)]


def _module_file(modules_dir: Path, pattern: str) -> Path | None:
    return next(iter(sorted(modules_dir.glob(pattern))), None)


def find_kernel() -> tuple[str, Path, Path]:
    """Return (version, vmlinuz, modules_dir) of the newest installed kernel with ESP modules.

    PYSWAN_LAB_KERNEL=<version> picks a specific one.
    """
    wanted = os.environ.get("PYSWAN_LAB_KERNEL")
    candidates = []
    for modules_dir in Path("/lib/modules").glob("*"):
        version = modules_dir.name
        vmlinuz = Path("/boot") / f"vmlinuz-{version}"
        if wanted and version != wanted:
            continue
        if vmlinuz.is_file() and _module_file(modules_dir, "kernel/net/ipv4/esp4.ko*"):
            candidates.append((version, vmlinuz, modules_dir))
    if not candidates:
        raise LabError(
            "no kernel with ESP modules found (need /boot/vmlinuz-<ver> and "
            "/lib/modules/<ver>/kernel/net/ipv4/esp4.ko*): apt-get install linux-image-amd64"
        )
    return max(candidates, key=lambda c: _version_key(c[0]))


def _module_deps(modules_dir: Path) -> dict[str, list[str]]:
    """modules.dep as {relative path: [dependency paths, nearest first]}."""
    deps = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        target, _, rest = line.partition(":")
        deps[target] = rest.split()
    return deps


def boot_module_paths(modules_dir: Path, names: Iterable[str] = BOOT_MODULES) -> list[Path]:
    """Module files for `names` and their dependencies, each after what it needs.

    Built-in modules are skipped (modules.builtin).
    """
    deps = _module_deps(modules_dir)
    by_name = {_module_name(p): p for p in deps}
    builtin_file = modules_dir / "modules.builtin"
    builtin = set()
    if builtin_file.exists():
        builtin = {_module_name(p) for p in builtin_file.read_text().split()}
    order: list[str] = []

    def visit(rel: str) -> None:
        if rel in order:
            return
        for dep in reversed(deps.get(rel, [])):  # modules.dep lists the farthest last
            visit(dep)
        order.append(rel)

    for name in names:
        if name in builtin:
            continue
        if name not in by_name:
            raise LabError(f"module {name} not found in {modules_dir}/modules.dep")
        visit(by_name[name])
    return [modules_dir / rel for rel in order]


def _module_name(path: str | Path) -> str:
    base = Path(path).name.split(".ko")[0]
    return base.replace("-", "_")


def _read_module(path: Path) -> bytes:
    """A module's bytes, decompressed: busybox insmod wants a plain ELF."""
    data = path.read_bytes()
    if path.name.endswith(".ko.xz"):
        return lzma.decompress(data)
    if path.name.endswith(".ko.gz"):
        return gzip.decompress(data)
    if path.name.endswith(".ko.zst"):  # no zstd in Python 3.11's stdlib
        return subprocess.run(["zstd", "-dc", str(path)], capture_output=True, check=True).stdout
    return data


class _Cpio:
    """A minimal cpio 'newc' writer (the format the kernel unpacks an initramfs from)."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"") -> None:
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(name) + 1, 0]
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.buf.write(header + name.encode() + b"\0")
        self.buf.write(b"\0" * (-self.buf.tell() % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-self.buf.tell() % 4))
        self.ino += 1

    def dir(self, name: str) -> None:
        self._entry(name, 0o040755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, data)

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


# Compressed-kernel formats in a bzImage, by magic, and how to inflate them.
_KERNEL_CODECS = {
    b"\xfd7zXZ\x00": lambda blob: lzma.LZMADecompressor().decompress(blob),
    b"\x1f\x8b\x08": lambda blob: zlib.decompressobj(31).decompress(blob),
}


def boot_kernel(version: str, vmlinuz: Path) -> Path:
    """The kernel image QEMU should boot: an uncompressed, cached vmlinux if possible.

    A PVH-capable kernel (CONFIG_PVH=y, as Debian's) boots straight from its ELF
    vmlinux; that skips the emulated BIOS and bzImage decompression, which take
    about 8 s under TCG.  Falls back to the bzImage if anything is unexpected.
    """
    config = Path("/boot") / f"config-{version}"
    if not config.is_file() or "\nCONFIG_PVH=y\n" not in config.read_text():
        return vmlinuz
    st = vmlinuz.stat()
    target = CACHE_DIR / version / f"vmlinux-{st.st_size}-{st.st_mtime_ns}"
    if target.exists():
        return target
    data = vmlinuz.read_bytes()
    elf = None
    for magic, inflate in _KERNEL_CODECS.items():
        at = data.find(magic)
        if at < 0:
            continue
        try:
            elf = inflate(data[at:])
        except (lzma.LZMAError, zlib.error):
            continue
        if elf.startswith(b"\x7fELF"):
            break
        elf = None
    if elf is None:
        return vmlinuz
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".vmlinux-")
    with os.fdopen(fd, "wb") as f:
        f.write(elf)
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    for stale in target.parent.glob("vmlinux-*"):
        if stale != target:
            stale.unlink(missing_ok=True)
    return target


def build_initramfs(version: str | None = None, force: bool = False) -> Path:
    """Build (or reuse) the cached initramfs for kernel `version`; return its path.

    Cached outside the repository, under CACHE_DIR/<version>/, keyed by a hash of
    its inputs so a changed /init or module set rebuilds it.
    """
    if version is None:
        version = find_kernel()[0]
    modules_dir = Path("/lib/modules") / version
    if not BUSYBOX.is_file():
        raise LabError(f"{BUSYBOX} missing: apt-get install busybox-static")
    modules = boot_module_paths(modules_dir)
    key = hashlib.sha256(INIT_SCRIPT.encode())
    for path in [BUSYBOX, *modules]:
        st = path.stat()
        key.update(f"{path}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    target = CACHE_DIR / version / f"initramfs-{key.hexdigest()[:16]}.cpio.gz"
    if target.exists() and not force:
        return target

    cpio = _Cpio()
    for d in ("bin", "dev", "proc", "sys", "modules"):
        cpio.dir(d)
    cpio.file("bin/busybox", BUSYBOX.read_bytes(), 0o755)
    cpio.file("init", INIT_SCRIPT.encode(), 0o755)
    names = [_module_name(m) for m in modules]
    cpio.file("modules.order", ("\n".join(names) + "\n").encode())
    for name, path in zip(names, modules, strict=True):
        cpio.file(f"modules/{name}.ko", _read_module(path))

    target.parent.mkdir(parents=True, exist_ok=True)
    # Write then rename: concurrent test runs may build the same file at once.
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".initramfs-")
    with os.fdopen(fd, "wb") as f:
        f.write(gzip.compress(cpio.finish(), compresslevel=6, mtime=0))
    os.chmod(tmp, 0o644)
    os.replace(tmp, target)
    for stale in target.parent.glob("initramfs-*.cpio.gz"):  # built from older inputs
        if stale != target:
            stale.unlink(missing_ok=True)
    return target


# ---------------------------------------------------------------- running the guest


def qemu_available() -> bool:
    return shutil.which(QEMU) is not None


def _stage2(
    cwd: str, path: str, env: Mapping[str, str], shell: str, modules: Sequence[str],
    share_dir: str | None,
) -> str:  # fmt: skip
    q = shlex.quote
    mounts = ""
    if share_dir:
        mounts = (
            f"mkdir -p {q(share_dir)} && "
            f"mount -t 9p -o {SHARE_9P_OPTS} share {q(share_dir)} "
            f"|| echo 'pyswan-lab: cannot mount share_dir'"
        )
    return STAGE2_TEMPLATE.format(
        path=q(path),
        env="\n".join(f"export {k}={q(v)}" for k, v in env.items()),
        mounts=mounts,
        ready=READY_MARK,
        modules=" ".join(q(m) for m in modules),
        cwd=q(cwd),
        shell=q(shell),
    )


def _opt(path: str | Path) -> str:
    """A path as a QEMU option value: commas must be doubled."""
    return str(path).replace(",", ",,")


def _qemu_command(
    vmlinuz: Path, initrd: Path, lab_dir: str, share_dir: str | None, memory_mb: int, smp: int
) -> list[str]:
    cmd = [
        QEMU,
        "-accel", "tcg,thread=multi",  # never KVM: nested KVM hangs at boot here
        "-cpu", "max",
        "-m", str(memory_mb),
        "-smp", str(smp),
        "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
        "-serial", "stdio", "-monitor", "none",
        "-kernel", _opt(vmlinuz),
        "-initrd", _opt(initrd),
        "-append", f"console=ttyS0 panic=-1 quiet loglevel=4 mitigations=off {KERNEL_ARGS}",
        "-fsdev", "local,id=root,path=/,security_model=none,readonly=on,multidevs=remap",
        "-device", "virtio-9p-pci,fsdev=root,mount_tag=root",
        "-fsdev", f"local,id=lab,path={_opt(lab_dir)},security_model=none",
        "-device", "virtio-9p-pci,fsdev=lab,mount_tag=lab",
    ]  # fmt: skip
    if share_dir:
        cmd += [
            "-fsdev", f"local,id=share,path={_opt(share_dir)},security_model=none",
            "-device", "virtio-9p-pci,fsdev=share,mount_tag=share",
        ]  # fmt: skip
    return cmd


def run_in_guest(
    script: str,
    timeout: float = 300,
    memory_mb: int = 1024,
    smp: int = 2,
    share_dir: str | None = None,
    *,
    venv: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    shell: str = "/bin/bash",
    modules: Sequence[str] = IPSEC_MODULES,
    echo_console: bool = False,
    echo_output: TextIO | None = None,
) -> GuestResult:
    """Boot the lab kernel, run `script` with `shell` as root in the guest, power off.

    - cwd: guest working directory (default: the caller's; falls back to / if absent).
    - venv: a virtualenv whose bin/ goes first on the guest's PATH.
    - share_dir: a host directory mounted read-write at the same path in the guest,
      so files the script writes there survive (everything else vanishes).
    - modules: loaded with modprobe before the script; see GuestResult.modules.
    - echo_console: copy the serial console to stderr as it arrives.
    - echo_output: a stream (e.g. sys.stdout) to copy the script's output to as it
      arrives; it is returned in GuestResult.output as well.

    Returns even if the script fails; raises LabTimeout if the guest outlives
    `timeout` seconds (QEMU is killed), LabError if it dies without a result.
    """
    version, vmlinuz, _ = find_kernel()
    kernel = boot_kernel(version, vmlinuz)
    initrd = build_initramfs(version)
    if not qemu_available():
        raise LabError(f"{QEMU} not found: apt-get install qemu-system-x86")
    path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    guest_env = dict(env or {})
    if venv:
        path = f"{Path(venv).absolute()}/bin:{path}"
        guest_env.setdefault("VIRTUAL_ENV", str(Path(venv).absolute()))
    if share_dir:
        share_dir = str(Path(share_dir).resolve())
        if not Path(share_dir).is_dir():
            raise LabError(f"share_dir {share_dir} is not a directory")

    with tempfile.TemporaryDirectory(prefix="pyswan-lab-") as lab_dir:
        lab = Path(lab_dir)
        (lab / "script").write_text(script)
        (lab / "stage2.sh").write_text(
            _stage2(cwd or os.getcwd(), path, guest_env, shell, modules, share_dir)
        )
        cmd = _qemu_command(kernel, initrd, lab_dir, share_dir, memory_mb, smp)
        console, boot_seconds, total_seconds, timed_out = _run_qemu(
            cmd, timeout, echo_console, lab / "out", echo_output
        )
        output = (lab / "out").read_text(errors="replace") if (lab / "out").exists() else ""
        if timed_out:
            raise LabTimeout(f"guest timed out after {timeout:.0f} s", console, output)
        rc_file = lab / "rc"
        if not rc_file.exists():
            raise LabError("guest powered off without reporting an exit status", console, output)
        loaded = {}
        if (lab / "modules").exists():
            for line in (lab / "modules").read_text().splitlines():
                name, _, status = line.partition(" ")
                loaded[name] = status
        return GuestResult(
            returncode=int(rc_file.read_text().strip()),
            output=output,
            console=console,
            boot_seconds=boot_seconds,
            total_seconds=total_seconds,
            modules=loaded,
        )


def _die_with_parent() -> None:
    """In the QEMU child: get SIGKILL if the Python parent dies (even by SIGKILL)."""
    PR_SET_PDEATHSIG = 1
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _run_qemu(
    cmd: list[str], timeout: float, echo_console: bool, out_file: Path, echo_output: TextIO | None
) -> tuple[str, float, float, bool]:
    """Run QEMU to completion; return (console, boot s, total s, timed out).

    The console is read by a thread (QEMU must never block on a full pipe); the
    script's output file is tailed here when `echo_output` wants it live.
    """
    start = time.monotonic()
    ready_at: list[float] = []
    chunks: list[str] = []
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        preexec_fn=_die_with_parent,
    )

    def read_console() -> None:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace")
            chunks.append(line)
            if not ready_at and READY_MARK in line:
                ready_at.append(time.monotonic() - start)
            if echo_console:
                sys.stderr.write(line)
                sys.stderr.flush()

    thread = threading.Thread(target=read_console, daemon=True)
    thread.start()
    offset = 0

    def tail_output() -> None:
        nonlocal offset
        if echo_output is None or not out_file.exists():
            return
        with out_file.open("rb") as f:
            f.seek(offset)
            data = f.read()
        if data:
            offset += len(data)
            echo_output.write(data.decode(errors="replace"))
            echo_output.flush()

    timed_out = False
    try:
        while proc.poll() is None:
            if time.monotonic() - start > timeout:
                timed_out = True
                break
            tail_output()
            time.sleep(0.2)
        tail_output()
    finally:
        # Also reached on KeyboardInterrupt: never leave a QEMU behind.
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        thread.join(timeout=5)
        if proc.stdout:
            proc.stdout.close()
    total = time.monotonic() - start
    console = "".join(chunks).replace("\r\n", "\n")
    return console, (ready_at[0] if ready_at else 0.0), total, timed_out


# ---------------------------------------------------------------- CLI


def _check() -> int:
    version, vmlinuz, modules_dir = find_kernel()
    print(f"kernel:    {version}")
    print(f"vmlinuz:   {vmlinuz}")
    print(f"boots:     {boot_kernel(version, vmlinuz)}")
    print(f"modules:   {modules_dir}")
    print(f"esp4:      {_module_file(modules_dir, 'kernel/net/ipv4/esp4.ko*')}")
    print(f"qemu:      {shutil.which(QEMU) or 'MISSING (apt-get install qemu-system-x86)'}")
    busybox = BUSYBOX if BUSYBOX.is_file() else "MISSING (apt-get install busybox-static)"
    print(f"busybox:   {busybox}")
    boot = boot_module_paths(modules_dir)
    print(f"initramfs modules: {' '.join(_module_name(m) for m in boot)}")
    initrd = build_initramfs(version)
    print(f"initramfs: {initrd} ({initrd.stat().st_size // 1024} KiB)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("check", help="show the kernel and build/cache the initramfs")
    run = sub.add_parser("run", help="run a shell script in the guest")
    run.add_argument("--timeout", type=float, default=300)
    run.add_argument("--memory", type=int, default=1024, help="MiB")
    run.add_argument("--smp", type=int, default=2)
    run.add_argument("--share", help="host dir mounted read-write at the same path")
    run.add_argument("--venv", help="put VENV/bin first on PATH (default: the running venv)")
    run.add_argument("--console", action="store_true", help="echo the serial console to stderr")
    run.add_argument("script", nargs="+", help="shell script (words are joined by spaces)")
    args = parser.parse_args(argv)
    if args.command == "check":
        return _check()

    venv = args.venv or (sys.prefix if sys.prefix != sys.base_prefix else None)
    try:
        result = run_in_guest(
            " ".join(args.script), timeout=args.timeout, memory_mb=args.memory, smp=args.smp,
            share_dir=args.share, venv=venv, echo_console=args.console, echo_output=sys.stdout,
        )  # fmt: skip
    except LabError as e:
        print(f"pyswan-lab: {e}", file=sys.stderr)
        return 125
    missing = [m for m, s in result.modules.items() if s == "missing"]
    summary = (
        f"pyswan-lab: exit {result.returncode}, shell after {result.boot_seconds:.1f} s, "
        f"total {result.total_seconds:.1f} s"
    )
    print(summary + (f"; modules missing: {missing}" if missing else ""), file=sys.stderr)
    return result.returncode


if __name__ == "__main__":
    sys.exit(main())
