"""`pluto --config FILE`: apply its `config setup` section to pluto's options.

Options given on the command line win over the file, as with Libreswan.
"""

from __future__ import annotations

from typing import Any


class SetupError(Exception):
    pass


def apply_config_setup(opts: Any) -> None:
    from ..auto.extract import ConnError, extract_setup
    from ..auto.parser import ConfigError, load_config

    try:
        cfg = load_config(opts.config)
    except ConfigError as e:
        raise SetupError(f"cannot load config '{opts.config}': {e}") from None
    except OSError as e:
        raise SetupError(f"cannot load config '{opts.config}': {e.strerror}") from None
    try:
        setup = extract_setup(cfg.setup_pairs())
    except ConnError as e:
        raise SetupError(f"cannot load config '{opts.config}': {e}") from None
    opts.config_file = cfg
    opts.setup = setup

    def take(attr: str, value: object) -> None:
        if attr not in opts.given and value is not None:
            setattr(opts, attr, value)

    take("logfile", setup.logfile)
    take("logtime", setup.logtime)
    take("logappend", setup.logappend)
    take("secretsfile", setup.secretsfile)
    take("ipsecdir", setup.ipsecdir)
    take("nssdir", setup.nssdir)
    take("listen", setup.listen)
    take("nhelpers", setup.nhelpers)
    take("uniqueids", setup.uniqueids)
    take("keep_alive", int(setup.keep_alive))
    take("ikev1_policy", setup.ikev1_policy)
    if setup.ike_socket_bufsize:
        take("ike_socket_bufsize", setup.ike_socket_bufsize)
    if "debug" not in opts.given and setup.plutodebug:
        from .debugopts import OptionError, apply_debug

        try:
            opts.debug = apply_debug(set(), setup.plutodebug)
        except OptionError as e:
            raise SetupError(f"cannot load config '{opts.config}': plutodebug: {e}") from None
    if setup.ddos_mode == "busy" and not opts.force_busy:
        opts.force_busy = True
