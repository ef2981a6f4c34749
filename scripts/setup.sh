#!/usr/bin/env bash
# Installs what building and testing wirelens needs, on Debian 12 as root.
# Idempotent and quiet: one line per step, the full output only when a step fails,
# and nothing but checks when everything is already there.
# `setup.sh --tests` also builds the test peers that come from crates.io (the tansu broker).
set -euo pipefail

with_tests=0
for arg in "$@"; do
    case $arg in
        --tests) with_tests=1 ;;
        *)
            echo "setup: unknown argument '$arg' (only --tests)" >&2
            exit 2
            ;;
    esac
done

if [[ $(id -u) -ne 0 ]]; then
    echo "setup: must run as root (installs packages, loads eBPF)" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
export PATH="$HOME/.cargo/bin:$PATH"

VENV=/opt/wirelens-venv
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REQUIREMENTS="$REPO_ROOT/tests/receiver/requirements.txt"
APT_PACKAGES=(
    llvm-22-dev libpolly-22-dev
    build-essential pkg-config libssl-dev
    nginx curl wrk tshark
    postgresql postgresql-client mariadb-server mariadb-client redis-server redis-tools
    nats-server rabbitmq-server dnsmasq amqp-tools dnsutils
    bpftool linux-perf
    python3-venv python3-pip
    iproute2 procps util-linux openssl
    docker-compose
    # the profiler tests' independent pprof decoder (tests/profilee/decode_pprof.py)
    protobuf-compiler python3-protobuf
    # the Prometheus endpoint's test scrapes it with a real Prometheus (tests/tests/prometheus.rs)
    prometheus
    # bench/replay.sh times wirelens replay and tshark -r with it
    time
)

step() { printf 'setup: %s\n' "$*"; }

# Runs a command with its output kept in a log, shown only if it fails.
quiet() {
    local log
    log=$(mktemp)
    if ! "$@" >"$log" 2>&1; then
        echo "setup: failed: $*" >&2
        tail -n 50 "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}

# --- Debian packages -------------------------------------------------------
# apt_install WHAT PKG...: installs the PKGs not yet installed, with package scripts kept
# from starting services (the default nginx on port 80, nghttpx's system proxy): tests run
# their own servers with their own prefixes and ports.
apt_install() {
    local what=$1 pkg missing=()
    shift
    for pkg in "$@"; do
        if [[ $(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null) != "install ok installed" ]]; then
            missing+=("$pkg")
        fi
    done
    if ((${#missing[@]} == 0)); then
        step "apt: $what present"
        return 0
    fi
    # tshark asks whether non-root users may capture; answer no, without a prompt.
    echo 'wireshark-common wireshark-common/install-setuid boolean false' | debconf-set-selections
    local policy_rc=/usr/sbin/policy-rc.d created_policy=0 install_status=0
    if [[ ! -e $policy_rc ]]; then
        printf '#!/bin/sh\nexit 101\n' >"$policy_rc"
        chmod 755 "$policy_rc"
        created_policy=1
    fi
    quiet apt-get update -q || install_status=$?
    if ((install_status == 0)); then
        quiet apt-get install -y -q --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold \
            "${missing[@]}" || install_status=$?
    fi
    if ((created_policy)); then rm -f "$policy_rc"; fi
    ((install_status == 0)) || exit "$install_status"
    step "apt: installed ${missing[*]}"
}
apt_install "all ${#APT_PACKAGES[@]} packages" "${APT_PACKAGES[@]}"

# --- the system nginx stays off ------------------------------------------
# If the package started its default server (port 80), stop it and keep it from
# starting at boot; the tests never use it.
stopped=""
if [[ -s /run/nginx.pid ]]; then
    pid=$(cat /run/nginx.pid)
    if [[ -r /proc/$pid/comm ]] && [[ $(cat "/proc/$pid/comm") == nginx ]]; then
        kill -QUIT "$pid" 2>/dev/null || true
        for _ in $(seq 50); do [[ -e /proc/$pid ]] || break; sleep 0.1; done
        stopped=" (stopped the running default server)"
    fi
fi
if [[ -d /run/systemd/system ]]; then
    systemctl disable --now nginx >/dev/null 2>&1 || true
else
    update-rc.d nginx disable >/dev/null 2>&1 || true
fi
step "nginx: system service off$stopped"

# --- the system database servers stay off ----------------------------------
# The database tests start their own PostgreSQL, MariaDB and Redis in temp dirs on free
# ports; the packaged services (default ports 5432, 3306, 6379) must not run.
# stop_server NAME PIDFILE COMM: SIGTERM the pid in PIDFILE if it is COMM, wait up to 10 s.
stop_server() {
    local pidfile=$2 comm=$3 pid
    [[ -s $pidfile ]] || return 1
    pid=$(head -n 1 "$pidfile")
    [[ -r /proc/$pid/comm ]] && [[ $(cat "/proc/$pid/comm") == "$comm" ]] || return 1
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do [[ -e /proc/$pid ]] || break; sleep 0.1; done
    return 0
}
db_stopped=()
for pidfile in /run/postgresql/*.pid; do
    [[ -e $pidfile ]] || continue
    if stop_server postgresql "$pidfile" postgres; then db_stopped+=(postgresql); fi
done
if stop_server mariadb /run/mysqld/mysqld.pid mariadbd; then db_stopped+=(mariadb); fi
if stop_server redis /run/redis/redis-server.pid redis-server; then db_stopped+=(redis); fi
# Debian's prometheus (port 9090) writes no pid file; the tests run their own.
if pid=$(pgrep -x -u prometheus prometheus | head -n 1) && [[ -n $pid ]]; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 100); do [[ -e /proc/$pid ]] || break; sleep 0.1; done
    db_stopped+=(prometheus)
fi
for service in postgresql mariadb redis-server rabbitmq-server dnsmasq nats-server prometheus; do
    if [[ -d /run/systemd/system ]]; then
        systemctl disable --now "$service" >/dev/null 2>&1 || true
    else
        update-rc.d "$service" disable >/dev/null 2>&1 || true
    fi
done
if ((${#db_stopped[@]})); then
    step "databases: system services off (stopped the running ${db_stopped[*]})"
else
    step "databases: system services off"
fi

# --- Rust: stable with clippy and rustfmt, nightly with rust-src ------------
if ! command -v rustup >/dev/null; then
    echo "setup: rustup not found (the machine's Rust toolchain is expected)" >&2
    exit 1
fi
stable_components=$(rustup component list --installed 2>/dev/null || true)
for comp in clippy rustfmt; do
    if ! grep -q "^$comp" <<<"$stable_components"; then
        quiet rustup component add "$comp"
    fi
done
if ! rustup component list --toolchain nightly --installed 2>/dev/null | grep -q '^rust-src'; then
    # The machine image ships a nightly: add rust-src to it rather than fetch a newer one.
    if ! rustup toolchain list | grep -q '^nightly'; then
        quiet rustup toolchain install nightly --profile minimal
    fi
    quiet rustup component add rust-src --toolchain nightly
    step "rust: nightly with rust-src ready"
else
    step "rust: stable (clippy, rustfmt) and nightly (rust-src) present"
fi

# --- bpf-linker (links the kernel object) ---------------------------------
if bpf_version=$(bpf-linker --version 2>/dev/null); then
    step "bpf-linker: present ($bpf_version)"
else
    quiet env LLVM_PREFIX=/usr/lib/llvm-22 \
        cargo install bpf-linker --no-default-features --features llvm-22 --locked
    step "bpf-linker: installed ($(bpf-linker --version))"
fi

# --- cargo-fuzz (scripts/fuzz.sh runs each parser target for a bounded time) ----
if command -v cargo-fuzz >/dev/null; then
    step "cargo-fuzz: present"
else
    quiet cargo install cargo-fuzz --locked
    step "cargo-fuzz: installed"
fi

# --- tansu: the Kafka-compatible broker of tests/tests/kafka.rs -----------------
# From crates.io, with the in-memory storage engine (feature dynostore). A debug build takes
# about 9 minutes here, a release build 35-45: a test broker needs no speed.
TOOLS=/opt/wirelens-tools
TANSU_VERSION=0.6.0
tansu_stamp="$TOOLS/.tansu-$TANSU_VERSION-dynostore"
if ((with_tests)); then
    if [[ -x $TOOLS/bin/tansu ]] && [[ -f $tansu_stamp ]]; then
        step "tansu: present ($TANSU_VERSION)"
    else
        mkdir -p "$TOOLS"
        quiet cargo install tansu --version "$TANSU_VERSION" --locked --debug \
            --features dynostore --root "$TOOLS" --force
        touch "$tansu_stamp"
        step "tansu: installed $TANSU_VERSION in $TOOLS/bin"
    fi
fi

# --- test-only peers ---------------------------------------------------------
# tests/tests/http2.rs and grpc.rs: nghttpd, nghttp, h2load and nghttpx; Debian's grpcio (it
# links the system libssl, so the agent's OpenSSL probes see it; the PyPI wheel embeds
# BoringSSL), run by /usr/bin/python3. tests/tests/profile.rs: Go's `go tool pprof` reads the
# profiler's files. tests/tests/containers.rs: podman with runc (crun 1.8 refuses this host's
# hybrid cgroup layout), containerd with ctr, and busybox-static, the test images' shell.
# tests/tests/demo_stack.rs: promtool (Debian ships it in `prometheus`) checks the demo's
# Prometheus configuration and dashboard queries; the demo application runs on Debian's
# python3 with the libraries its image installs (python3-psycopg2, python3-redis).
# tests/tests/jvm.rs: javac and java from Debian's OpenJDK 17.
# tests/tests/network_metrics.rs: iptables (packet loss in a test namespace; this kernel has no
# sch_netem) and ss, ip from iproute2 (above).
# tests/tests/scripts.rs: bpftrace (the agent's --script runs it) and iptables (drops loopback
# packets to one port to cause TCP retransmits).
# tests/tests/gotls.rs and bench/gotls.sh: Go peers built with golang-go in GOPATH mode from
# Debian's packaged gRPC-Go (golang-google-grpc-dev pulls x/net, protobuf...): no module download.
TEST_PACKAGES=(nghttp2-server nghttp2-client nghttp2-proxy python3-grpcio python3-grpc-tools
    golang-go golang-google-grpc-dev podman runc containerd busybox-static
    prometheus python3-psycopg2 python3-redis openjdk-17-jdk-headless bpftrace iptables)
if ((with_tests)); then
    apt_install "test-only peers" "${TEST_PACKAGES[@]}"
    quiet /usr/bin/python3 -c 'import grpc'
    quiet /usr/bin/python3 -c 'import psycopg2, redis'
fi

# --- Python venv for the OTLP receiver and the python clients ---------------
stamp="$VENV/.wirelens-requirements"
if [[ -x $VENV/bin/python ]] && [[ -f $stamp ]] && cmp -s "$REQUIREMENTS" "$stamp"; then
    step "python: $VENV up to date"
else
    [[ -x $VENV/bin/python ]] || quiet /usr/bin/python3 -m venv "$VENV"
    quiet "$VENV/bin/pip" install -q --disable-pip-version-check -r "$REQUIREMENTS"
    quiet "$VENV/bin/python" -c 'import grpc, requests, google.protobuf, opentelemetry.proto.collector.trace.v1.trace_service_pb2_grpc'
    quiet "$VENV/bin/python" -c 'import psycopg, pymysql, redis, nats, pika, kafka, cassandra'
    quiet "$VENV/bin/python" -c 'import helm_python; helm_python.helm_sdk_version()'
    cp "$REQUIREMENTS" "$stamp"
    step "python: $VENV installed from tests/receiver/requirements.txt"
fi

# --- the semantic-conventions registry for tests/semconv/check_semconv.mjs ----
# The official @opentelemetry/semantic-conventions package from npm, at the version pinned in
# tests/semconv/package.json (its lock file pins the integrity hash), installed with the
# machine's Node.js and npm.
SEMCONV=/opt/wirelens-semconv
semconv_stamp="$SEMCONV/.wirelens-package-lock.json"
if ((!with_tests)); then
    : # only the tests read it
elif [[ -f $semconv_stamp ]] && cmp -s "$REPO_ROOT/tests/semconv/package-lock.json" "$semconv_stamp" &&
    [[ -f $SEMCONV/node_modules/@opentelemetry/semantic-conventions/package.json ]]; then
    step "semconv: $SEMCONV up to date"
else
    if ! command -v npm >/dev/null; then
        # A plain Debian 12 has neither: its own packages do (Node.js 18).
        apt_install "Node.js and npm" nodejs npm
    fi
    mkdir -p "$SEMCONV"
    cp "$REPO_ROOT/tests/semconv/package.json" "$REPO_ROOT/tests/semconv/package-lock.json" "$SEMCONV/"
    quiet npm ci --prefix "$SEMCONV" --no-audit --no-fund
    cp "$REPO_ROOT/tests/semconv/package-lock.json" "$semconv_stamp"
    step "semconv: $SEMCONV installed from tests/semconv/package-lock.json"
fi

# --- tracefs (the agent mounts it too) ------------------------------------
if mountpoint -q /sys/kernel/tracing; then
    step "tracefs: mounted"
else
    quiet mount -t tracefs nodev /sys/kernel/tracing
    step "tracefs: mounted now"
fi
