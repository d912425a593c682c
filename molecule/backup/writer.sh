#!/usr/bin/env bash
# Writes until /root/writer.stop appears: trades into TimescaleDB (one psql session,
# a commit per row) and bots through the API (SQLite writes in the daemon), their ids
# new in each run (the API refuses a bot_id it has).
set -uo pipefail
rm -f /root/writer.stop

post() {
  exec 3<>/dev/tcp/127.0.0.1/8080 || return 0
  printf 'POST /api/bots HTTP/1.0\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s' \
    "${#1}" "$1" >&3
  cat <&3 >/dev/null
  exec 3>&-
}

run=$(date +%s)
(
  i=0
  while [ ! -e /root/writer.stop ]; do
    post "{\"bot_id\":\"writer-$run-$i\",\"symbol\":\"ETH\",\"strategy\":\"quad_ma\"}"
    i=$((i + 1))
    sleep 0.1
  done
) &

i=0
while [ ! -e /root/writer.stop ]; do
  echo "INSERT INTO trades VALUES (now(), 'WRITER', $i, 1, 'buy');"
  i=$((i + 1))
  sleep 0.01
done | docker compose --project-directory /opt/algo-trade exec -T db psql -q -U algo -d algo_trade
wait
