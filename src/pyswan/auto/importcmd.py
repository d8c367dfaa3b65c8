"""``ipsec import``, ``ipsec newhostkey`` and ``ipsec showhostkey`` for the file store.

Libreswan keeps keys in an NSS database and these commands drive pk12util, rsasigkey and
friends.  pyswan's store is a directory tree (see ``pyswan.pluto.certstore``): ``import``
unpacks a PKCS#12 bundle into ``certs/NICK.pem``, ``private/NICK.pem`` (mode 0600) and
``cacerts/*.pem``; ``newhostkey`` writes a fresh raw key to ``private/CKAID.pem``;
``showhostkey`` prints the ``leftrsasigkey=``/``leftpubkey=`` lines for a key.

Each command is a function ``*_main(argv) -> int`` for the ``ipsec`` dispatcher.
cryptography is imported lazily so that ``ipsec`` itself starts fast.
"""

from __future__ import annotations

import argparse
import os
import re
import secrets
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cryptography import x509

__all__ = ["main", "import_main", "newhostkey_main", "showhostkey_main"]

DEFAULT_IPSECDIR = "/etc/ipsec.d"


class _Usage(Exception):
    """Bad command line; the message is printed with the usage."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # never exit from inside a library call
        raise _Usage(message)


def _parse(parser: _Parser, argv: list[str]) -> argparse.Namespace | int:
    try:
        return parser.parse_args(argv)
    except _Usage as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        print(parser.format_usage().rstrip(), file=sys.stderr)
        return 1
    except SystemExit as exc:  # --help
        return int(exc.code or 0)


def _dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ipsecdir", "--nssdir", "-d", dest="ipsecdir",
                        default=DEFAULT_IPSECDIR,
                        help=f"certificate and key store [{DEFAULT_IPSECDIR}]")


def _safe_name(text: str) -> str:
    """A nickname usable as a file name (NSS nicknames may contain spaces and slashes)."""
    name = re.sub(r"[/\\\x00]", "_", text.strip()).lstrip(".")
    return name or "unnamed"


def _write(path: Path, data: bytes, mode: int) -> None:
    """Write atomically with ``mode`` from the start (keys never appear world-readable)."""
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


# ------------------------------------------------------------------ ipsec import

def _ca_name(cert: x509.Certificate, friendly: bytes | None) -> str:
    from cryptography.x509.oid import NameOID

    if friendly:
        return _safe_name(friendly.decode("utf-8", "replace"))
    cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if cns:
        return _safe_name(str(cns[0].value))
    return _safe_name(cert.fingerprint(_sha1()).hex()[:16])


def _sha1() -> Any:
    from cryptography.hazmat.primitives import hashes

    return hashes.SHA1()


def _store_ca(cacerts: Path, cert: x509.Certificate, name: str) -> Path:
    """cacerts/NAME.pem unless an identical certificate is already there."""
    from cryptography.hazmat.primitives import serialization

    pem = cert.public_bytes(serialization.Encoding.PEM)
    for existing in sorted(cacerts.glob("*")):
        try:
            if existing.is_file() and existing.read_bytes() == pem:
                return existing
        except OSError:
            continue
    path = cacerts / f"{name}.pem"
    n = 1
    while path.exists():
        n += 1
        path = cacerts / f"{name}-{n}.pem"
    _write(path, pem, 0o644)
    return path


def _load_p12(data: bytes, password: str | None) -> Any:
    from cryptography.hazmat.primitives.serialization import pkcs12

    tries = [password.encode()] if password is not None else [None, b""]
    error: Exception | None = None
    for pw in tries:
        try:
            return pkcs12.load_pkcs12(data, pw)
        except (ValueError, TypeError) as exc:
            error = exc
    raise ValueError(str(error))


def import_main(argv: list[str]) -> int:
    """``ipsec import FILE.p12 [--nickname N] [--ipsecdir DIR] [--password P]``."""
    parser = _Parser(prog="ipsec import", add_help=True,
                     description="Import a PKCS#12 (*.p12) file into the pyswan key store")
    parser.add_argument("file", metavar="FILE.p12")
    parser.add_argument("--nickname", "-n", help="nickname for the certificate "
                        "(default: the PKCS#12 friendly name, else the file name)")
    parser.add_argument("--password", "-W", help="PKCS#12 password (default: none)")
    _dir_option(parser)
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    from cryptography.hazmat.primitives import serialization

    from pyswan.ike.pubkey import ckaid_hex

    try:
        data = Path(args.file).read_bytes()
    except OSError as exc:
        print(f"ipsec import: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 1
    try:
        bundle = _load_p12(data, args.password)
    except ValueError as exc:
        print(f"ipsec import: PKCS12 decode failed for {args.file}: bad password or not a "
              f"PKCS#12 file ({exc})", file=sys.stderr)
        return 1
    base = Path(args.ipsecdir)
    certs, private, cacerts = base / "certs", base / "private", base / "cacerts"
    for d, mode in ((certs, 0o755), (private, 0o700), (cacerts, 0o755)):
        try:
            d.mkdir(parents=True, exist_ok=True, mode=mode)
        except OSError as exc:
            print(f"ipsec import: ERROR: destination directory \"{d}\" is missing or "
                  f"permission denied ({exc.strerror})", file=sys.stderr)
            return 1
    leaf = bundle.cert.certificate if bundle.cert is not None else None
    friendly = bundle.cert.friendly_name if bundle.cert is not None else None
    nickname = _safe_name(args.nickname or (friendly.decode("utf-8", "replace") if friendly
                                            else Path(args.file).stem))
    lines: list[str] = []
    try:
        if leaf is not None:
            pem = leaf.public_bytes(serialization.Encoding.PEM)
            target = certs / f"{nickname}.pem"
            if target.exists() and target.read_bytes() != pem:
                print(f"ipsec import: certificate nickname \"{nickname}\" already exists in "
                      f"{certs}; choose another with --nickname", file=sys.stderr)
                return 1
            _write(target, pem, 0o644)
            lines.append(f"imported certificate \"{nickname}\" to {target}")
        if bundle.key is not None:
            key_pem = bundle.key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption())
            target = private / f"{nickname}.pem"
            _write(target, key_pem, 0o600)
            lines.append(f"imported private key with CKAID {ckaid_hex(bundle.key)} to {target}")
        for extra in bundle.additional_certs:
            path = _store_ca(cacerts, extra.certificate,
                             _ca_name(extra.certificate, extra.friendly_name))
            lines.append(f"imported CA certificate \"{path.stem}\" to {path}")
    except OSError as exc:
        print(f"ipsec import: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    if not lines:
        print(f"ipsec import: {args.file} contains neither certificates nor keys",
              file=sys.stderr)
        return 1
    for line in lines:
        print(line)
    print("ipsec import: PKCS12 IMPORT SUCCESSFUL")
    return 0


main = import_main


# ------------------------------------------------------------------ newhostkey

_MIN_RSA_BITS = 2192  # rsasigkey.c MIN_KEYBIT
_MAX_RSA_BITS = 20000
_CURVES = {"ecdsa": ("secp256r1", "secp384r1", "secp521r1"), "eddsa": ("ed25519",)}


def _generate(keytype: str, bits: int | None, curve: str | None) -> Any:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    if keytype == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=bits or 3072)
    if keytype == "ecdsa":
        cls = {"secp256r1": ec.SECP256R1, "secp384r1": ec.SECP384R1,
               "secp521r1": ec.SECP521R1}[curve or "secp256r1"]
        return ec.generate_private_key(cls())
    return ed25519.Ed25519PrivateKey.generate()


def newhostkey_main(argv: list[str]) -> int:
    """``ipsec newhostkey [--keytype rsa|ecdsa|eddsa] [--bits N | --curve C]``."""
    parser = _Parser(prog="ipsec newhostkey",
                     description="Generate a raw host key into the pyswan key store")
    parser.add_argument("--keytype", default="rsa", choices=("rsa", "ecdsa", "eddsa"))
    parser.add_argument("--bits", type=int)
    parser.add_argument("--curve")
    parser.add_argument("--quiet", action="store_true")
    for ignored in ("--seeddev", "--hostname", "--password"):
        parser.add_argument(ignored, help=argparse.SUPPRESS)
    parser.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)
    _dir_option(parser)
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    me = "ipsec newhostkey"
    if args.bits is not None and args.curve is not None:
        print(f"{me}: --bits and --curve are mutually exclusive", file=sys.stderr)
        return 1
    if args.keytype == "rsa":
        if args.curve is not None:
            print(f"{me}: --curve and --keytype rsa are mutually exclusive", file=sys.stderr)
            return 1
        bits = args.bits
        if bits is None:  # rsasigkey: a random size in [3072, 3072+768), multiple of 16
            bits = 3072 + secrets.randbelow(768 // 16) * 16
        if bits < _MIN_RSA_BITS:
            print(f"ipsec rsasigkey: requested RSA key size ({bits}) is too small - use "
                  f"{_MIN_RSA_BITS} or more", file=sys.stderr)
            return 1
        if bits > _MAX_RSA_BITS:
            print(f"ipsec rsasigkey: requested RSA key size ({bits}) is too large",
                  file=sys.stderr)
            return 1
        args.bits = bits
    else:
        if args.bits is not None:
            print(f"{me}: --bits and --keytype {args.keytype} are mutually exclusive",
                  file=sys.stderr)
            return 1
        if args.curve is not None and args.curve not in _CURVES[args.keytype]:
            print(f"ipsec {args.keytype}sigkey: curve specification is malformed: "
                  f"{args.curve}", file=sys.stderr)
            return 1
    from cryptography.hazmat.primitives import serialization

    from pyswan.ike.pubkey import ckaid_hex

    key = _generate(args.keytype, args.bits, args.curve)
    private = Path(args.ipsecdir) / "private"
    try:
        private.mkdir(parents=True, exist_ok=True, mode=0o700)
        ckaid = ckaid_hex(key)
        target = private / f"{ckaid}.pem"
        _write(target, key.private_bytes(serialization.Encoding.PEM,
                                         serialization.PrivateFormat.PKCS8,
                                         serialization.NoEncryption()), 0o600)
    except OSError as exc:
        print(f"{me}: {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"Generated {args.keytype.upper()} key pair with CKAID {ckaid} was stored in "
              f"{target}", file=sys.stderr)
        print(f"The public key can be displayed using: ipsec showhostkey --left --ckaid "
              f"{ckaid}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------ showhostkey

def _keys(ipsecdir: str) -> list[tuple[Path, Any]]:
    from pyswan.pluto.certstore import load_private_key

    out = []
    for path in sorted((Path(ipsecdir) / "private").glob("*")):
        if not path.is_file() or path.name.startswith("."):
            continue
        try:
            out.append((path, load_private_key(path.read_bytes())))
        except Exception:  # unreadable, encrypted or not a key: not listed
            continue
    return out


def showhostkey_main(argv: list[str]) -> int:
    """``ipsec showhostkey {--list | --left | --right | --pem} [--pubkey] --ckaid X``."""
    parser = _Parser(prog="ipsec showhostkey")
    ops = parser.add_mutually_exclusive_group()
    for op in ("--list", "--dump", "--left", "--right", "--pem"):
        ops.add_argument(op, action="store_true")
    parser.add_argument("--pubkey", action="store_true")
    parser.add_argument("--ckaid")
    parser.add_argument("--rsaid")
    parser.add_argument("--verbose", action="store_true", help=argparse.SUPPRESS)
    _dir_option(parser)
    args = _parse(parser, argv)
    if isinstance(args, int):
        return args
    from cryptography.hazmat.primitives import serialization

    from pyswan.ike.pubkey import ckaid_hex, format_raw_pubkey, key_type_name, keyid

    me = "showhostkey"
    keys = _keys(args.ipsecdir)
    if args.list or args.dump:
        for n, (_, key) in enumerate(keys, start=1):
            print(f"<{n:2d}> {key_type_name(key)} keyid: {keyid(key)} ckaid: {ckaid_hex(key)}")
        return 0
    if not (args.left or args.right or args.pem):
        print(f"{me}: You must specify an operation", file=sys.stderr)
        return 1
    if args.ckaid is None and args.rsaid is None:
        print(f"{me}: You must select a key using --ckaid or --rsaid", file=sys.stderr)
        return 1
    if args.ckaid is not None:
        want = args.ckaid.lower()
        found = [k for _, k in keys if ckaid_hex(k).startswith(want)]
    else:
        found = [k for _, k in keys if key_type_name(k) == "RSA" and keyid(k) == args.rsaid]
    if not found:
        print(f"{me}: No keys found", file=sys.stderr)
        return 20
    key = found[0]
    pub = key.public_key()
    if args.pem:
        print(pub.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo).decode(),
              end="")
        return 0
    side = "left" if args.left else "right"
    keyword, value = format_raw_pubkey(pub, "pubkey" if args.pubkey else None)
    print(f"\t# {side} keyid: {keyid(key)}")
    print(f"\t{side}{keyword}={value}")
    return 0
