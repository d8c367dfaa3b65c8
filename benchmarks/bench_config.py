"""Benchmark: load a 10,000-conn ipsec.conf and extract every conn.

Run: .venv/bin/python benchmarks/bench_config.py [N]
Prints timings; asserts nothing.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

from pyswan.auto.extract import extract_conn, extract_setup
from pyswan.auto.parser import load_config


def generate(n: int) -> str:
    """n conns with distinct names, subnets and IDs; some also= and %default."""
    out = [
        "version 2",
        "",
        "config setup",
        "\tikev1-policy=accept",
        "\tlogfile=/tmp/pluto.log",
        "\tplutodebug=none",
        "",
        "conn %default",
        "\tkeyexchange=ikev2",
        "\tikelifetime=8h",
        "\trekeymargin=3m",
        "",
        "conn base-psk",
        "\tauthby=secret",
        "\tleft=192.0.2.1",
        "\tleftid=@gateway",
        "",
        "conn base-rsa",
        "\tleft=192.0.2.1",
        "\tleftid=@gateway",
        "\tleftrsasigkey=0sAwEAAa" + "b" * 40 + "==",
        "\trightrsasigkey=%cert",
        "",
    ]
    for i in range(n):
        a, b = divmod(i, 250)
        out += [
            f"conn peer{i:05d}",
            f"\tright=198.{18 + a // 250}.{a % 250}.{b + 1}",
            f"\trightid=@peer{i:05d}.example.net",
            f"\tleftsubnet=10.{a % 250}.{b}.0/24",
            f"\trightsubnet=172.{16 + a % 16}.{b}.0/24 # peer LAN",
            "\tike=aes256-sha2_256;dh19" if i % 3 else "\tesp=aes_gcm256",
            "\tauto=add" if i % 2 else "\tauto=ondemand",
            f"\talso={'base-psk' if i % 2 else 'base-rsa'}",
            "",
        ]
    return "\n".join(out)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    text = generate(n)
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "ipsec.conf")
        with open(path, "w") as f:
            f.write(text)
        t0 = time.perf_counter()
        cfg = load_config(path)
        t1 = time.perf_counter()
        setup = extract_setup(cfg.setup_pairs())
        names = [c for c in cfg.conn_names if c.startswith("peer")]
        configs = [extract_conn(c, cfg.triples(c), setup) for c in names]
        t2 = time.perf_counter()
    size = len(text.encode())
    print(f"ipsec.conf: {n} conns, {text.count(chr(10))} lines, {size / 1e6:.2f} MB")
    print(f"load_config: {t1 - t0:.3f} s ({n / (t1 - t0):,.0f} conns/s)")
    print(f"extract_conn x{len(configs)}: {t2 - t1:.3f} s "
          f"({(t2 - t1) / len(configs) * 1e6:.0f} us/conn)")
    print(f"total: {t2 - t0:.3f} s")


if __name__ == "__main__":
    main()
