"""UDP echo probes, run inside the test namespaces with ``ip netns exec``.

``serve BIND PORT LOG``: echo every datagram back and append "<source> <payload>" to
LOG. ``send SRC PORT TIMEOUT DST...``: from SRC, send one datagram to each DST and
print a JSON map DST -> "ok" (echo came back from DST), "timeout" or "error:<errno>".
"""

from __future__ import annotations

import json
import socket
import sys
import time


def serve(bind: str, port: int, log_path: str) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((bind, port))
    with open(log_path, "a", buffering=1) as log:
        sys.stdout.write("ready\n")
        sys.stdout.flush()
        while True:
            data, (src, sport) = sock.recvfrom(2048)
            log.write(f"{src} {data.decode(errors='replace')}\n")
            sock.sendto(data, (src, sport))


def send(src: str, port: int, timeout: float, targets: list[str]) -> dict[str, str]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((src, 0))
    results = {}
    for dst in targets:
        try:
            sock.sendto(f"{src}>{dst}".encode(), (dst, port))
            results[dst] = "timeout"
        except OSError as err:
            results[dst] = f"error:{err.errno}"
    deadline = time.monotonic() + timeout
    while "timeout" in results.values():
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            data, (peer, _) = sock.recvfrom(2048)
        except TimeoutError:
            break
        except OSError:
            continue
        if data.decode(errors="replace") == f"{src}>{peer}" and results.get(peer) == "timeout":
            results[peer] = "ok"
    return results


def main(argv: list[str]) -> None:
    if argv[0] == "serve":
        serve(argv[1], int(argv[2]), argv[3])
    else:
        result = send(argv[1], int(argv[2]), float(argv[3]), argv[4:])
        sys.stdout.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main(sys.argv[1:])
