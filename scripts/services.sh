#!/usr/bin/env bash
# Install (from Debian packages) and start PostgreSQL and RabbitMQ on this machine.
set -euo pipefail
if ! command -v pg_ctlcluster >/dev/null || ! command -v rabbitmq-server >/dev/null; then
  apt-get update -q
  apt-get install -y -q postgresql rabbitmq-server
fi
pg_isready -q -h 127.0.0.1 || pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start
rabbitmqctl -q status >/dev/null 2>&1 || { rabbitmq-server -detached; sleep 5; rabbitmqctl wait --timeout 60 /var/lib/rabbitmq/mnesia/rabbit@$(hostname -s).pid 2>/dev/null || true; }
echo "PostgreSQL and RabbitMQ are running"
