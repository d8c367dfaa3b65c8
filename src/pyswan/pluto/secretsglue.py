"""Loading ipsec.secrets into pluto, atomically (all or nothing), as `--rereadsecrets`."""

from __future__ import annotations

import glob
from typing import Any

from ..whack import rc


def reload_secrets(pluto: Any, w: Any) -> bool:
    pattern = pluto.opts.secretsfile
    files = sorted(glob.glob(pattern))
    if not files:
        pluto.log.log(f'no secrets filename matched "{pattern}"', w)
        return True
    from ..auto.secrets import SecretsError, load_secrets

    try:
        secrets = load_secrets(pattern)
    except SecretsError as e:
        pluto.log.log(f"{e}; keeping the previous secrets", w, rc.RC_LOG)
        return False
    except OSError as e:
        pluto.log.log(f'could not open secrets file "{pattern}": {e.strerror}; keeping the previous secrets', w)
        return False
    pluto.log.log("forgetting secrets")
    for f in files:
        pluto.log.log(f'loading secrets from "{f}"', w)
    for warning in getattr(secrets, "warnings", []):
        pluto.log.log(warning, w)
    pluto.secrets = secrets
    pluto.secrets_files = files
    return True
