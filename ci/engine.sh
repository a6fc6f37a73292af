#!/usr/bin/env bash
# An extra Docker engine beside the main one, for the engine-pool tests and
# benchmark. Idempotent:
#   ci/engine.sh start NAME N   start it (if its socket does not answer) and
#                               load the busybox base; prints its DOCKER_HOST
#   ci/engine.sh stop NAME      stop it by its pid files (dockerd, then its containerd),
#                               and the container shims that name its socket
# Everything lives under target/ci/engines/NAME: data-root, exec-root, pid
# file, socket, log. vfs storage, no iptables, and a bridge of its own
# (strata-pN, 172.31.(240+N).1/24) created beforehand: a daemon without one
# would take the main engine's docker0 away. N is 1 to 9.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=strata-ci/busybox:latest
cmd=${1:?usage: ci/engine.sh start NAME N | stop NAME}
name=${2:?usage: ci/engine.sh start NAME N | stop NAME}
dir="$PWD/target/ci/engines/$name"
sock="$dir/docker.sock"
host="unix://$sock"

ping() { curl -s -o /dev/null --max-time 2 --unix-socket "$sock" http://engine/_ping; }

stop_pid() { # stop_pid FILE: TERM, then KILL after 10 s
  [ -f "$1" ] || return 0
  pid=$(cat "$1")
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 20); do kill -0 "$pid" 2>/dev/null || break; sleep 0.5; done
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

case "$cmd" in
  start)
    n=${3:?usage: ci/engine.sh start NAME N}
    case "$n" in [1-9]) ;; *) echo "ci/engine.sh: N is 1 to 9, not $n" >&2; exit 2 ;; esac
    if ! ping; then
      # A killed engine leaves its containerd and socket behind.
      stop_pid "$dir/exec/containerd/containerd.pid"
      rm -f "$sock"
      mkdir -p "$dir/data" "$dir/exec"
      bridge="strata-p$n"
      if ! ip link show "$bridge" >/dev/null 2>&1; then
        ip link add "$bridge" type bridge
        ip addr add "172.31.$((240 + n)).1/24" dev "$bridge"
        ip link set "$bridge" up
      fi
      echo '{}' >"$dir/daemon.json"
      nohup dockerd --config-file "$dir/daemon.json" --data-root "$dir/data" \
        --exec-root "$dir/exec" --pidfile "$dir/dockerd.pid" -H "$host" \
        --bridge "$bridge" --iptables=false --ip-masq=false --storage-driver vfs --mtu 1400 \
        >"$dir/log" 2>&1 &
      for _ in $(seq 1 60); do ping && break; sleep 0.5; done
      ping || { echo "ci/engine.sh: engine $name did not start; see $dir/log" >&2; exit 1; }
    fi
    docker -H "$host" image inspect "$BASE" >/dev/null 2>&1 ||
      docker save "$BASE" | docker -H "$host" load >/dev/null
    echo "$host"
    ;;
  stop)
    stop_pid "$dir/dockerd.pid"
    stop_pid "$dir/exec/containerd/containerd.pid"
    # Container shims outlive a killed engine; they name its own socket.
    for pid in $(pgrep -f -- "-address $dir/exec/containerd/containerd.sock" || true); do
      kill "$pid" 2>/dev/null || true
    done
    rm -f "$sock"
    ;;
  *) echo "usage: ci/engine.sh start NAME N | stop NAME" >&2; exit 2 ;;
esac
