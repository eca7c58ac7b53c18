"""One line per missing dependency, with the command that starts or installs it."""

from __future__ import annotations

import os
import socket
import sys
from urllib.parse import urlparse

DATABASE_URL = os.environ.get("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/spring")
AMQP_URL = os.environ.get("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")


def reachable(url: str, default_port: int) -> tuple[bool, str]:
    parsed = urlparse(url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or default_port
    try:
        with socket.create_connection((host, port), timeout=2):
            return True, f"{host}:{port}"
    except OSError:
        return False, f"{host}:{port}"


def main() -> int:
    ok = True
    up, where = reachable(DATABASE_URL, 5432)
    if not up:
        ok = False
        sys.stderr.write(
            f"PostgreSQL is not reachable at {where}: start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` "
            "or install and start it with `make services`\n"
        )
    up, where = reachable(AMQP_URL, 5672)
    if not up:
        ok = False
        sys.stderr.write(
            f"RabbitMQ is not reachable at {where}: start it with `rabbitmq-server -detached` "
            "or install and start it with `make services`\n"
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
