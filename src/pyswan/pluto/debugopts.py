"""Debug classes (`plutodebug=`, `--debug`) and impairments (`--impair`), as Libreswan 5.x."""

from __future__ import annotations

DEBUG_BITS: dict[str, str] = {
    "routing": "enable routing debug logging",
    "base": "enable detailed debug logging",
    "cpu-usage": "estimate cpu used",
    "refcnt": "debug reference counts",
    "tmi": "far too much information",
    "updown": "run updown script with 'set -v -x'",
    "crypt": "encryption/decryption of messages: DANGER!",
    "private": "displays private information: DANGER!",
    "whackwatch": "never let WHACK go",
    "add-prefix": "add the log prefix to debug lines",
    "add-state": "add the SA's state to debug lines",
}
DEBUG_ALIASES: dict[str, tuple[str, ...]] = {
    "base": ("routing", "base"),
    "all": ("routing", "base", "cpu-usage", "refcnt"),
    "tmi": ("routing", "base", "cpu-usage", "refcnt", "tmi"),
}
# Names older Libreswan and FreeS/WAN configs still carry (`plutodebug="control parsing"`):
# accepted as base debugging rather than rejected.
LEGACY_DEBUG = frozenset(
    {"control", "parsing", "emitting", "raw", "lifecycle", "klips", "dns", "oppo",
     "controlmore", "pfkey", "nattraversal", "natt", "x509", "dpd", "xauth", "oppoinfo",
     "kernel", "crypto"}
)


class OptionError(ValueError):
    pass


def apply_debug(current: set[str], spec: str, *, enable: bool = True) -> set[str]:
    """Apply a debug list (`base`, `none`, `no-crypt`, `all,private` ...) to `current`."""
    result = set(current)
    for word in spec.replace("+", " ").replace(",", " ").split():
        word = word.lower().removeprefix("debug-")
        on = enable
        if word.startswith("no-"):
            on, word = not enable, word[3:]
        if word == "none":
            if on:
                result.clear()
            continue
        if word in DEBUG_ALIASES:
            names: tuple[str, ...] = DEBUG_ALIASES[word]
        elif word in DEBUG_BITS:
            names = (word,)
        elif word in LEGACY_DEBUG:
            names = ("base",)
        else:
            raise OptionError(f'unrecognized debug option "{word}"; try --debug help')
        if on:
            result.update(names)
        else:
            result.difference_update(names)
    return result


def debug_help() -> list[str]:
    lines = ["aliases:"]
    for alias, names in DEBUG_ALIASES.items():
        lines.append(f"  {alias}: {'+'.join(names)}")
    lines.append("bits:")
    for name, text in DEBUG_BITS.items():
        lines.append(f"  {name}: {text}")
    return lines


def format_debug(current: set[str]) -> str:
    ordered = [n for n in DEBUG_BITS if n in current]
    return "+".join(ordered) if ordered else "none"


# -- impairments ------------------------------------------------------------------------
# (name, kind, help); kind: bool, unsigned, action
IMPAIRMENTS: dict[str, tuple[str, str]] = {
    "suppress-retransmits": ("bool", "causes pluto to never send retransmits (wait the full timeout)"),
    "timeout-on-retransmit": ("bool", "causes pluto to 'retry' (switch protocol) on the first retransmit"),
    "revival": ("bool", "disable code that revives a connection that is supposed to stay up"),
    "send-no-delete": ("bool", "causes pluto to omit sending Notify/Delete messages"),
    "drop-i2": ("bool", "drop second initiator packet"),
    "corrupt-encrypted": ("bool", "corrupts the encrypted packet so that the decryption fails"),
    "replay-encrypted": ("bool", "replay encrypted packets"),
    "jacob-two-two": ("bool", "cause pluto to send all messages twice."),
    "send-no-ikev2-auth": ("bool", "causes pluto to omit the AUTH payload"),
    "send-no-idr": ("bool", "causes pluto to omit IDr payload"),
    "major-version-bump": ("bool", "cause pluto to send an IKE major version that's higher then we support."),
    "minor-version-bump": ("bool", "cause pluto to send an IKE minor version that's higher then we support."),
    "ike-initiator-spi": ("unsigned", "corrupt the IKE initiator SPI setting it to the value"),
    "ike-responder-spi": ("unsigned", "corrupt the IKE responder SPI setting it to the value"),
    "ddos-cookie": ("unsigned", "mangle the DDOS cookie in the IKE_SA_INIT request"),
    "childless-ikev2-supported": ("bool", "omit/ignore the CHILDLESS_IKEV2_SUPPORTED notify"),
    "ignore-soft-expire": ("bool", "ignore kernel soft expire events"),
    "ignore-hard-expire": ("bool", "ignore kernel hard expire events"),
    "omit-v2-ike-auth-child": ("bool", "omit, and ignore, the IKE_AUTH child"),
    "helper-thread-delay": ("unsigned", "delay crypto helper by N seconds"),
    "install-ipsec-sa-inbound-state": ("bool", "error after installing inbound state"),
    "install-ipsec-sa-outbound-state": ("bool", "error after installing outbound state"),
    "lifetime": ("bool", "skip any IKE/IPsec lifetime checks when adding connection"),
    "cannot-ondemand": ("bool", "force acquire to call cannot_ondemand() and fail"),
    "trigger-revival": ("action", "trigger revival of the given connection serial"),
    "trigger-v2-rekey": ("action", "trigger rekey of the given SA serial"),
    "trigger-v2-liveness": ("action", "trigger liveness probe of the given SA serial"),
    "send-keepalive": ("action", "send a NAT keepalive for the given SA serial"),
}


def parse_impair(spec: str, current: dict[str, int]) -> tuple[str, list[str]]:
    """Apply one `--impair` operand; return (what-was-done, lines-to-print)."""
    word = spec.strip().lower().replace("_", "-")
    if word in ("help", "?"):
        return "help", [f"{n}: {h}" for n, (_k, h) in IMPAIRMENTS.items()]
    if word in ("list", "show"):
        return "list", [f"{n}: {v}" for n, v in sorted(current.items())]
    if word == "none":
        current.clear()
        return "none", []
    what, sep, how = word.replace("=", ":").partition(":")
    off = what.startswith("no-")
    if off:
        what = what[3:]
    if what not in IMPAIRMENTS:
        raise OptionError(f'unrecognized impair option "{what}"')
    kind, help_text = IMPAIRMENTS[what]
    if how == "help":
        return "help", [f"{what}: {help_text}"]
    if off or how in ("no", "false", "off", "0") and kind == "bool":
        current.pop(what, None)
        return what, []
    if not sep or how in ("yes", "true", "on"):
        if kind != "bool":
            raise OptionError(f'impair option "{what}" requires a value')
        value = 1
    else:
        try:
            value = int(how, 0)
        except ValueError:
            raise OptionError(f'impair option "{what}" has invalid value "{how}"') from None
        if value < 0:
            raise OptionError(f'impair option "{what}" has invalid value "{how}"')
    current[what] = value
    return what, []
