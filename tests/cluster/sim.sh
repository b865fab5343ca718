#!/usr/bin/env bash
# Local Kubernetes control plane with simulated GPU nodes, run as plain
# processes on 127.0.0.1 (no containers): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, kwok (simulated nodes and pods) and
# the LeaderWorkerSet controller with its admission webhooks.
#
#   tests/cluster/sim.sh build                 compile the pinned binaries (cached)
#   tests/cluster/sim.sh up [--profile NAME]   start everything, create the nodes
#   tests/cluster/sim.sh down                  stop everything, remove the state
#   tests/cluster/sim.sh status                processes, nodes, versions
#   tests/cluster/sim.sh env                   prints: export KUBECONFIG=...; export PATH=...
#   tests/cluster/sim.sh kubectl ARGS...       kubectl against the sim cluster
#
# Versions are pinned by the wrapper Go modules under tests/cluster/build/*/go.mod.
# See tests/cluster/README.md.
set -euo pipefail

SIM_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SIM_DIR/../.." && pwd)"

CACHE_DIR="${GPUINFER_SIM_CACHE:-$HOME/.cache/gpuinfer-sim}"
STATE_DIR="${GPUINFER_SIM_STATE:-$CACHE_DIR/run}"
BIN_ROOT="$CACHE_DIR/bin"
BUILD_LOG_DIR="$CACHE_DIR/logs"
PROFILE="${GPUINFER_SIM_PROFILE:-default}"
PROFILE_EXPLICIT=${GPUINFER_SIM_PROFILE:+1}
KUBECONFIG_COPY="${GPUINFER_SIM_KUBECONFIG_COPY-$REPO_ROOT/inventories/sim/kubeconfig}"
PORT_BASE="${GPUINFER_SIM_PORT_BASE:-29400}"
# Service ClusterIPs come from a loopback range on purpose: whatever the API
# server dials for a Service (a webhook or APIService backed by a Service)
# stays on this machine. Pod IPs (kwok) must not be loopback (Endpoint
# validation), see tests/cluster/kwok/kwok.yaml.
SERVICE_CIDR="${GPUINFER_SIM_SERVICE_CIDR:-127.96.0.0/16}"
NODE_WAIT_S="${GPUINFER_SIM_NODE_WAIT:-300}"
# Bump when the build recipe below changes, to force a rebuild of every binary.
BUILD_RECIPE=1

ETCD_PORT=$((PORT_BASE + 79))
ETCD_PEER_PORT=$((PORT_BASE + 80))
APISERVER_PORT=$((PORT_BASE + 43))
LWS_WEBHOOK_PORT=$((PORT_BASE + 44))
KWOK_PORT=$((PORT_BASE + 50))
KCM_PORT=$((PORT_BASE + 57))
SCHED_PORT=$((PORT_BASE + 59))
LWS_HEALTH_PORT=$((PORT_BASE + 81))

COMPONENTS=(etcd kubernetes kwok lws helm)
# Start order; down stops them in reverse.
PROCESSES=(etcd kube-apiserver kube-controller-manager kube-scheduler kwok lws-controller)

CURRENT_STEP="init"
STATE_MARKER=".gpuinfer-sim-state"

say() { printf 'sim.sh: %s\n' "$*" >&2; }

# fail MESSAGE [LOGFILE]: report the failed step and where to look, then exit.
fail() {
  local msg=$1 log=${2:-}
  say "ERROR in step '$CURRENT_STEP': $msg"
  if [[ -n "$log" && -f "$log" ]]; then
    say "read the log: $log (last lines below)"
    tail -n 25 "$log" | sed 's/^/    | /' >&2
  elif [[ -n "$log" ]]; then
    say "log: $log"
  fi
  exit 1
}

step() {
  CURRENT_STEP=$1
  say "[$((SECONDS))s] $1"
}

find_go() {
  if [[ -n "${GPUINFER_SIM_GO:-}" ]]; then
    echo "$GPUINFER_SIM_GO"
  elif command -v go >/dev/null 2>&1; then
    command -v go
  elif [[ -x /usr/local/go/bin/go ]]; then
    echo /usr/local/go/bin/go
  else
    return 1
  fi
}

find_python() {
  if [[ -n "${GPUINFER_SIM_PYTHON:-}" ]]; then
    echo "$GPUINFER_SIM_PYTHON"
  elif [[ -x "$REPO_ROOT/.venv/bin/python" ]]; then
    echo "$REPO_ROOT/.venv/bin/python"
  else
    command -v python3
  fi
}

# Version of MODULE pinned in tests/cluster/build/COMPONENT/go.mod.
pinned_version() {
  local component=$1 module=$2
  awk -v m="$module" '
    $1 == m { print $2; exit }
    $1 == "require" && $2 == m { print $3; exit }
  ' "$SIM_DIR/build/$component/go.mod"
}

component_module() {
  case $1 in
    etcd) echo go.etcd.io/etcd/server/v3 ;;
    kubernetes) echo k8s.io/kubernetes ;;
    kwok) echo sigs.k8s.io/kwok ;;
    lws) echo sigs.k8s.io/lws ;;
    helm) echo helm.sh/helm/v3 ;;
    *) return 1 ;;
  esac
}

component_binaries() {
  case $1 in
    etcd) echo etcd ;;
    kubernetes) echo kube-apiserver kube-controller-manager kube-scheduler kubectl ;;
    kwok) echo kwok ;;
    lws) echo lws-controller ;;
    helm) echo helm ;;
  esac
}

component_version() { pinned_version "$1" "$(component_module "$1")"; }
component_bin_dir() { echo "$BIN_ROOT/$1-$(component_version "$1")"; }

K8S_VERSION="$(component_version kubernetes)"
K8S_BIN="$(component_bin_dir kubernetes)"
ETCD_BIN="$(component_bin_dir etcd)"
KWOK_BIN="$(component_bin_dir kwok)"
LWS_BIN="$(component_bin_dir lws)"
HELM_BIN="$(component_bin_dir helm)"
KUBECTL="$K8S_BIN/kubectl"
ADMIN_KUBECONFIG="$STATE_DIR/kubeconfig"

# ---------------------------------------------------------------- build ----

# ldflags of COMPONENT (run inside its wrapper module directory).
component_ldflags() {
  local component=$1 go=$2 version
  version=$(component_version "$component")
  local flags="-s -w"
  case $component in
    kubernetes)
      local date minor
      date=$("$go" list -m -f '{{if .Time}}{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}{{end}}' k8s.io/kubernetes)
      minor=$(echo "$version" | cut -d. -f2)
      local pkg
      for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
        flags+=" -X $pkg.gitVersion=$version -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
        # The module proxy does not tell the release commit; leave it empty
        # rather than the source placeholder "$Format:%H$".
        flags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=${date:-1970-01-01T00:00:00Z} -X $pkg.gitCommit="
      done
      ;;
    helm)
      local kminor
      kminor=$("$go" list -m -f '{{.Version}}' k8s.io/client-go | cut -d. -f2)
      flags+=" -X helm.sh/helm/v3/internal/version.version=$version"
      flags+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
      flags+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$kminor"
      flags+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$kminor"
      ;;
    lws)
      flags+=" -X sigs.k8s.io/lws/pkg/version.GitVersion=$version"
      ;;
  esac
  echo "$flags"
}

component_stamp() {
  local component=$1 ldflags=$2
  {
    echo "recipe=$BUILD_RECIPE"
    echo "ldflags=$ldflags"
    cat "$SIM_DIR/build/$component/go.mod" "$SIM_DIR/build/$component/go.sum"
  } | sha256sum | cut -d' ' -f1
}

component_is_built() {
  local component=$1 dir bin
  dir=$(component_bin_dir "$component")
  [[ -f "$dir/.stamp" ]] || return 1
  for bin in $(component_binaries "$component"); do
    [[ -x "$dir/$bin" ]] || return 1
  done
  # Cheap check without the go tool: the stamp names the go.mod/go.sum hash.
  [[ "$(sed -n 2p "$dir/.stamp")" == "$(cat "$SIM_DIR/build/$component/go.mod" "$SIM_DIR/build/$component/go.sum" | sha256sum | cut -d' ' -f1)" ]]
}

build_component() {
  local component=$1 go=$2
  local moddir="$SIM_DIR/build/$component" version dir tmp log ldflags stamp src
  version=$(component_version "$component")
  dir=$(component_bin_dir "$component")
  log="$BUILD_LOG_DIR/build-$component-$version.log"
  mkdir -p "$BIN_ROOT" "$BUILD_LOG_DIR"
  CURRENT_STEP="build $component $version"
  ldflags=$(cd "$moddir" && component_ldflags "$component" "$go") ||
    fail "cannot read module metadata (go list) in $moddir"
  stamp=$(component_stamp "$component" "$ldflags")
  if [[ -f "$dir/.stamp" && "$(head -n1 "$dir/.stamp")" == "$stamp" ]] && component_is_built "$component"; then
    say "$component $version: cached in $dir"
    return 0
  fi
  say "building $component $version (log: $log)"
  tmp="$dir.tmp.$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  local start=$SECONDS
  {
    echo "# $(date -u +%FT%TZ) building $component $version with $("$go" version)"
    case $component in
      kubernetes)
        (cd "$moddir" && "$go" build -p 2 -mod=readonly -ldflags "$ldflags" -o "$tmp/" \
          k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
          k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl)
        ;;
      etcd)
        (cd "$moddir" && "$go" build -p 2 -mod=readonly -ldflags "$ldflags" -o "$tmp/etcd" go.etcd.io/etcd/server/v3)
        ;;
      kwok)
        (cd "$moddir" && "$go" build -p 2 -mod=readonly -ldflags "$ldflags" -o "$tmp/kwok" sigs.k8s.io/kwok/cmd/kwok)
        ;;
      lws)
        # The CRDs ship in the module; keep a copy next to the binary so that
        # `up` needs no Go tool.
        (cd "$moddir" && "$go" build -p 2 -mod=readonly -ldflags "$ldflags" -o "$tmp/lws-controller" sigs.k8s.io/lws/cmd) &&
          src=$(cd "$moddir" && "$go" list -m -f '{{.Dir}}' sigs.k8s.io/lws) &&
          mkdir -p "$tmp/crds" &&
          cp "$src"/config/crd/bases/*.yaml "$tmp/crds/" &&
          chmod u+w "$tmp"/crds/*.yaml
        ;;
      helm)
        (cd "$moddir" && "$go" build -p 2 -mod=readonly -ldflags "$ldflags" -o "$tmp/helm" helm.sh/helm/v3/cmd/helm)
        ;;
    esac
  } >"$log" 2>&1 || {
    rm -rf "$tmp"
    fail "go build of $component $version failed" "$log"
  }
  printf '%s\n%s\n' "$stamp" \
    "$(cat "$moddir/go.mod" "$moddir/go.sum" | sha256sum | cut -d' ' -f1)" >"$tmp/.stamp"
  rm -rf "$dir"
  mv "$tmp" "$dir"
  say "$component $version built in $((SECONDS - start))s -> $dir"
}

cmd_build() {
  local go
  go=$(find_go) || { CURRENT_STEP=build; fail "no Go toolchain found (install Go >= 1.26 or set GPUINFER_SIM_GO)"; }
  local component
  for component in "${COMPONENTS[@]}"; do
    build_component "$component" "$go"
  done
}

ensure_built() {
  local component missing=0
  for component in "${COMPONENTS[@]}"; do
    component_is_built "$component" || missing=1
  done
  if ((missing)); then
    cmd_build
  fi
}

sim_path() {
  echo "$K8S_BIN:$HELM_BIN:$ETCD_BIN:$KWOK_BIN:$LWS_BIN"
}

# -------------------------------------------------------------- runtime ----

pid_file() { echo "$STATE_DIR/pids/$1.pid"; }
log_file() { echo "$STATE_DIR/logs/$1.log"; }

# True when the process recorded for NAME is alive and is one of ours.
proc_alive() {
  local f pid
  f=$(pid_file "$1")
  [[ -f "$f" ]] || return 1
  pid=$(cat "$f")
  [[ -n "$pid" && -r "/proc/$pid/cmdline" ]] || return 1
  tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline" | grep -qF -- "$BIN_ROOT/"
}

start_proc() {
  local name=$1
  shift
  local log
  log=$(log_file "$name")
  echo "# $(date -u +%FT%TZ) $*" >>"$log"
  # setsid: the process outlives this script and ignores the terminal's ^C.
  # fd 9 (the sim.sh lock) is closed so that the lock ends with this script.
  (cd "$STATE_DIR" && exec setsid "$@" >>"$log" 2>&1 </dev/null 9>&-) &
  echo $! >"$(pid_file "$name")"
}

stop_proc() {
  local name=$1 f pid i
  f=$(pid_file "$name")
  [[ -f "$f" ]] || return 0
  pid=$(cat "$f")
  if proc_alive "$name"; then
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      proc_alive "$name" || break
      sleep 0.1
    done
    if proc_alive "$name"; then
      say "$name (pid $pid) did not stop after 10s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.2
    fi
  fi
  rm -f "$f"
}

# True while the process just started for NAME exists and is not a zombie.
# Unlike proc_alive it does not require our binary in its command line: right
# after start_proc the background subshell may not have exec'd the binary yet
# (seen on a loaded 2-core CI host), and a pid this fresh cannot be reused.
proc_running() {
  local f pid state
  f=$(pid_file "$1")
  [[ -f "$f" ]] || return 1
  pid=$(cat "$f")
  [[ -n "$pid" && -r "/proc/$pid/stat" ]] || return 1
  state=$(sed -E 's/^[0-9]+ \(.*\) ([A-Za-z]).*/\1/' "/proc/$pid/stat" 2>/dev/null) || return 1
  [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# " (exit status N)" for a started process that has ended, when this shell
# started it; "" otherwise.
exit_status_of() {
  local f pid rc
  f=$(pid_file "$1")
  [[ -f "$f" ]] || return 0
  pid=$(cat "$f")
  wait "$pid" 2>/dev/null
  rc=$?
  if ((rc == 127)); then
    return 0
  elif ((rc > 128)); then
    echo " (killed by signal $((rc - 128)))"
  else
    echo " (exit status $rc)"
  fi
}

# wait_until NAME TIMEOUT COMMAND...: poll COMMAND; fail early if NAME died.
wait_until() {
  local name=$1 timeout=$2
  shift 2
  local start=$SECONDS
  until "$@" >/dev/null 2>&1; do
    if ! proc_running "$name"; then
      fail "$name exited during start-up$(exit_status_of "$name")" "$(log_file "$name")"
    fi
    if ((SECONDS - start >= timeout)); then
      fail "$name not ready after ${timeout}s" "$(log_file "$name")"
    fi
    sleep 0.3
  done
}

port_in_use() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

check_ports() {
  local port
  for port in "$ETCD_PORT" "$ETCD_PEER_PORT" "$APISERVER_PORT" "$LWS_WEBHOOK_PORT" "$KWOK_PORT" \
    "$KCM_PORT" "$SCHED_PORT" "$LWS_HEALTH_PORT"; do
    if port_in_use "$port"; then
      fail "port 127.0.0.1:$port is already in use (another sim cluster? run 'tests/cluster/sim.sh down', or set GPUINFER_SIM_PORT_BASE)"
    fi
  done
}

# ---------------------------------------------------------------- certs ----

PKI=""

new_key_csr() { # name subject
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$PKI/$1.key" -out "$PKI/$1.csr" -subj "$2" 2>>"$PKI/openssl.log"
}

sign() { # name extendedKeyUsage [subjectAltName]
  local ext="$PKI/$1.ext"
  {
    echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$2"
    if [[ -n "${3:-}" ]]; then echo "subjectAltName=$3"; fi
  } >"$ext"
  openssl x509 -req -in "$PKI/$1.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
    -days 365 -sha256 -extfile "$ext" -out "$PKI/$1.crt" 2>>"$PKI/openssl.log"
  rm -f "$PKI/$1.csr" "$ext"
}

write_kubeconfig() { # file user cert-name
  local file=$1 user=$2 name=$3
  cat >"$file" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: gpuinfer-sim
  cluster:
    server: https://127.0.0.1:$APISERVER_PORT
    certificate-authority-data: $(base64 -w0 <"$PKI/ca.crt")
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 <"$PKI/$name.crt")
    client-key-data: $(base64 -w0 <"$PKI/$name.key")
contexts:
- name: gpuinfer-sim
  context:
    cluster: gpuinfer-sim
    user: $user
current-context: gpuinfer-sim
EOF
  chmod 600 "$file"
}

first_service_ip() {
  local net=${SERVICE_CIDR%/*}
  echo "${net%.*}.$((${net##*.} + 1))"
}

gen_pki() {
  PKI="$STATE_DIR/pki"
  mkdir -p "$PKI"
  chmod 700 "$PKI"
  : >"$PKI/openssl.log"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -keyout "$PKI/ca.key" -out "$PKI/ca.crt" -subj "/CN=gpuinfer-sim-ca" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" 2>>"$PKI/openssl.log" ||
    fail "openssl could not create the CA" "$PKI/openssl.log"
  local local_san="IP:127.0.0.1,DNS:localhost"
  local api_san
  api_san="$local_san,IP:$(first_service_ip),DNS:kubernetes,DNS:kubernetes.default"
  api_san+=",DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  # name | subject | extended key usage | subjectAltName
  local spec name subject eku san
  for spec in \
    "etcd|/CN=gpuinfer-sim-etcd|serverAuth,clientAuth|$local_san" \
    "apiserver|/CN=kube-apiserver|serverAuth|$api_san" \
    "apiserver-etcd-client|/CN=kube-apiserver-etcd-client|clientAuth|" \
    "apiserver-kubelet-client|/O=system:masters/CN=kube-apiserver-kubelet-client|clientAuth|" \
    "admin|/O=system:masters/CN=gpuinfer-sim-admin|clientAuth|" \
    "controller-manager|/CN=system:kube-controller-manager|clientAuth|" \
    "scheduler|/CN=system:kube-scheduler|clientAuth|" \
    "front-proxy-client|/CN=front-proxy-client|clientAuth|" \
    "kwok|/CN=gpuinfer-sim-kwok|serverAuth|$local_san" \
    "lws-webhook|/CN=lws-webhook|serverAuth|$local_san"; do
    IFS='|' read -r name subject eku san <<<"$spec"
    { new_key_csr "$name" "$subject" && sign "$name" "$eku" "$san"; } ||
      fail "openssl could not create the certificate '$name'" "$PKI/openssl.log"
  done
  { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$PKI/sa.key" 2>>"$PKI/openssl.log" &&
    openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>>"$PKI/openssl.log"; } ||
    fail "openssl could not create the service-account key pair" "$PKI/openssl.log"
  chmod 600 "$PKI"/*.key
  mkdir -p "$STATE_DIR/lws-certs"
  cp "$PKI/lws-webhook.crt" "$STATE_DIR/lws-certs/tls.crt"
  cp "$PKI/lws-webhook.key" "$STATE_DIR/lws-certs/tls.key"
  write_kubeconfig "$ADMIN_KUBECONFIG" gpuinfer-sim-admin admin
  write_kubeconfig "$STATE_DIR/controller-manager.kubeconfig" system:kube-controller-manager controller-manager
  write_kubeconfig "$STATE_DIR/scheduler.kubeconfig" system:kube-scheduler scheduler
}

# ------------------------------------------------------------------- up ----

healthy_https() { # url: anonymous health endpoint with the sim CA
  curl -fsS --max-time 3 --cacert "$STATE_DIR/pki/ca.crt" "$1" | grep -q '^ok'
}

etcd_healthy() {
  curl -fsS --max-time 3 --cacert "$STATE_DIR/pki/ca.crt" --cert "$STATE_DIR/pki/etcd.crt" \
    --key "$STATE_DIR/pki/etcd.key" "https://127.0.0.1:$ETCD_PORT/health" | grep -q '"health":"true"'
}

apiserver_ready() {
  "$KUBECTL" --kubeconfig "$ADMIN_KUBECONFIG" get --raw /readyz --request-timeout=3s 2>/dev/null | grep -q '^ok'
}

kubectl_sim() { "$KUBECTL" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }

is_up() {
  local p
  [[ -f "$STATE_DIR/ready" ]] || return 1
  for p in "${PROCESSES[@]}"; do
    proc_alive "$p" || return 1
  done
  apiserver_ready
}

any_running() {
  local p
  for p in "${PROCESSES[@]}"; do
    proc_alive "$p" && return 0
  done
  return 1
}

start_etcd() {
  step "start etcd ($(component_version etcd)) on 127.0.0.1:$ETCD_PORT"
  local pki="$STATE_DIR/pki"
  start_proc etcd "$ETCD_BIN/etcd" \
    --name=sim --data-dir="$STATE_DIR/etcd" \
    --listen-client-urls="https://127.0.0.1:$ETCD_PORT" \
    --advertise-client-urls="https://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls="http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster="sim=http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster-state=new \
    --cert-file="$pki/etcd.crt" --key-file="$pki/etcd.key" \
    --trusted-ca-file="$pki/ca.crt" --client-cert-auth=true \
    --unsafe-no-fsync=true --quota-backend-bytes=4294967296 --log-level=warn
  wait_until etcd 60 etcd_healthy
}

start_apiserver() {
  step "start kube-apiserver $K8S_VERSION on 127.0.0.1:$APISERVER_PORT"
  local pki="$STATE_DIR/pki"
  start_proc kube-apiserver "$K8S_BIN/kube-apiserver" \
    --bind-address=127.0.0.1 --advertise-address=127.0.0.1 --secure-port="$APISERVER_PORT" \
    --etcd-servers="https://127.0.0.1:$ETCD_PORT" \
    --etcd-cafile="$pki/ca.crt" --etcd-certfile="$pki/apiserver-etcd-client.crt" \
    --etcd-keyfile="$pki/apiserver-etcd-client.key" \
    --tls-cert-file="$pki/apiserver.crt" --tls-private-key-file="$pki/apiserver.key" \
    --client-ca-file="$pki/ca.crt" \
    --service-account-issuer=https://kubernetes.default.svc.cluster.local \
    --service-account-key-file="$pki/sa.pub" --service-account-signing-key-file="$pki/sa.key" \
    --service-cluster-ip-range="$SERVICE_CIDR" \
    --authorization-mode=Node,RBAC \
    --enable-admission-plugins=NodeRestriction \
    --allow-privileged=true \
    --endpoint-reconciler-type=none \
    --kubelet-client-certificate="$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key="$pki/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority="$pki/ca.crt" \
    --kubelet-preferred-address-types=InternalIP,Hostname \
    --requestheader-client-ca-file="$pki/ca.crt" --requestheader-allowed-names=front-proxy-client \
    --requestheader-username-headers=X-Remote-User --requestheader-group-headers=X-Remote-Group \
    --requestheader-extra-headers-prefix=X-Remote-Extra- \
    --proxy-client-cert-file="$pki/front-proxy-client.crt" --proxy-client-key-file="$pki/front-proxy-client.key" \
    --profiling=false --event-ttl=1h
  wait_until kube-apiserver 120 apiserver_ready
}

start_controllers() {
  step "start kube-controller-manager and kube-scheduler"
  local pki="$STATE_DIR/pki" kcfg="$STATE_DIR/controller-manager.kubeconfig"
  # Nodes heartbeat through status updates every 4-5 minutes (kwok stage
  # node-heartbeat), hence the long grace period before a node is NotReady.
  start_proc kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig="$kcfg" --authentication-kubeconfig="$kcfg" --authorization-kubeconfig="$kcfg" \
    --bind-address=127.0.0.1 --secure-port="$KCM_PORT" \
    --leader-elect=false --use-service-account-credentials=true \
    --service-account-private-key-file="$pki/sa.key" --root-ca-file="$pki/ca.crt" \
    --cluster-signing-cert-file="$pki/ca.crt" --cluster-signing-key-file="$pki/ca.key" \
    --cluster-name=gpuinfer-sim \
    --node-monitor-grace-period=15m \
    --kube-api-qps=100 --kube-api-burst=200 --profiling=false
  local scfg="$STATE_DIR/scheduler.yaml"
  cat >"$scfg" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $STATE_DIR/scheduler.kubeconfig
  qps: 100
  burst: 200
leaderElection:
  leaderElect: false
enableProfiling: false
EOF
  start_proc kube-scheduler "$K8S_BIN/kube-scheduler" \
    --config="$scfg" \
    --authentication-kubeconfig="$STATE_DIR/scheduler.kubeconfig" \
    --authorization-kubeconfig="$STATE_DIR/scheduler.kubeconfig" \
    --bind-address=127.0.0.1 --secure-port="$SCHED_PORT"
  wait_until kube-controller-manager 60 curl -fsSk --max-time 3 "https://127.0.0.1:$KCM_PORT/healthz"
  wait_until kube-scheduler 60 curl -fsSk --max-time 3 "https://127.0.0.1:$SCHED_PORT/healthz"
}

# render_served_logs TEMPLATE: prints TEMPLATE (kwok ClusterLogs/Logs documents) with every
# @LOG:<repository path>@ replaced by the path of that recorded log converted to the CRI log format
# in $STATE_DIR/served-logs/. kwok reads container logs with the kubelet's CRI log reader
# (k8s.io/cri-client/pkg/logs), which refuses plain text ("unsupported log format"); each line
# becomes "<time> stdout F <line>", so `kubectl logs` returns the recording byte for byte.
render_served_logs() {
  local tpl=$1 dir="$STATE_DIR/served-logs" text rel src dst ts
  local re='@LOG:([A-Za-z0-9._/-]+)@'
  mkdir -p "$dir"
  text=$(<"$tpl")
  ts=$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)
  while [[ $text =~ $re ]]; do
    rel=${BASH_REMATCH[1]}
    src="$REPO_ROOT/$rel"
    [[ -f "$src" ]] || fail "recorded log $rel (named in $tpl) is missing"
    dst="$dir/${rel//\//_}"
    awk -v ts="$ts" '{ print ts " stdout F " $0 }' "$src" >"$dst"
    text=${text//"@LOG:$rel@"/"$dst"}
  done
  printf '%s\n' "$text"
}

start_kwok() {
  step "start kwok $(component_version kwok) (simulated kubelets)"
  local cfg="$STATE_DIR/kwok.yaml" f
  : >"$cfg"
  for f in kwok.yaml node-initialize.yaml node-heartbeat.yaml pod-ready.yaml pod-image-missing.yaml pod-complete.yaml pod-delete.yaml; do
    printf -- '---\n' >>"$cfg"
    cat "$SIM_DIR/kwok/$f" >>"$cfg"
  done
  # Recorded logs served for the pods of chosen namespaces (kwok/served-logs.yaml.in).
  for f in "$SIM_DIR"/kwok/*.yaml.in; do
    printf -- '---\n' >>"$cfg"
    render_served_logs "$f" >>"$cfg"
  done
  mkdir -p "$STATE_DIR/kwok-home"
  # HOME points into the state dir so that a personal ~/.kwok/kwok.yaml is not
  # merged into this configuration.
  start_proc kwok env HOME="$STATE_DIR/kwok-home" "$KWOK_BIN/kwok" \
    --kubeconfig="$ADMIN_KUBECONFIG" --config="$cfg" \
    --manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake \
    --node-lease-duration-seconds=0 \
    --server-address="127.0.0.1:$KWOK_PORT" --node-port="$KWOK_PORT" \
    --tls-cert-file="$STATE_DIR/pki/kwok.crt" --tls-private-key-file="$STATE_DIR/pki/kwok.key"
  wait_until kwok 60 curl -fsS --max-time 3 --cacert "$STATE_DIR/pki/ca.crt" "https://127.0.0.1:$KWOK_PORT/healthz"
}

crd_established() {
  [[ "$(kubectl_sim get crd "$1" -o 'jsonpath={.status.conditions[?(@.type=="Established")].status}')" == True ]]
}

lws_dry_run() {
  kubectl_sim create --dry-run=server -o name -f - <<EOF
apiVersion: leaderworkerset.x-k8s.io/v1
kind: LeaderWorkerSet
metadata:
  name: sim-webhook-probe
  namespace: default
spec:
  replicas: 1
  leaderWorkerTemplate:
    size: 2
    workerTemplate:
      spec:
        containers:
        - name: probe
          image: registry.invalid/probe:0
EOF
}

start_lws() {
  step "install LeaderWorkerSet $(component_version lws) CRDs, controller and webhooks"
  kubectl_sim apply --server-side --force-conflicts -f "$LWS_BIN/crds/" >>"$(log_file lws-controller)" 2>&1 ||
    fail "applying the LWS CRDs failed" "$(log_file lws-controller)"
  wait_until kube-apiserver 60 crd_established leaderworkersets.leaderworkerset.x-k8s.io
  wait_until kube-apiserver 60 crd_established disaggregatedsets.disaggregatedset.x-k8s.io
  local cfg="$STATE_DIR/lws-config.yaml"
  cat >"$cfg" <<EOF
apiVersion: config.lws.x-k8s.io/v1alpha1
kind: Configuration
leaderElection:
  leaderElect: false
internalCertManagement:
  enable: false
webhook:
  host: 127.0.0.1
  port: $LWS_WEBHOOK_PORT
  certDir: $STATE_DIR/lws-certs
health:
  healthProbeBindAddress: 127.0.0.1:$LWS_HEALTH_PORT
metrics:
  bindAddress: "0"
EOF
  start_proc lws-controller env KUBECONFIG="$ADMIN_KUBECONFIG" "$LWS_BIN/lws-controller" \
    --config="$cfg" --zap-log-level=info
  wait_until lws-controller 60 curl -fsS --max-time 3 "http://127.0.0.1:$LWS_HEALTH_PORT/readyz"
  sed -e "s#@WEBHOOK_URL@#https://127.0.0.1:$LWS_WEBHOOK_PORT#g" \
    -e "s#@CA_BUNDLE@#$(base64 -w0 <"$STATE_DIR/pki/ca.crt")#g" \
    "$SIM_DIR/manifests/lws-webhooks.yaml.in" >"$STATE_DIR/lws-webhooks.yaml"
  kubectl_sim apply -f "$STATE_DIR/lws-webhooks.yaml" >>"$(log_file lws-controller)" 2>&1 ||
    fail "applying the LWS webhook configurations failed" "$(log_file lws-controller)"
  # A server-side dry run goes through both LWS webhooks: proves they answer.
  wait_until lws-controller 60 lws_dry_run
}

SIM_PYTHON=""

# Pre-flight: the Python that runs make_nodes.py, and the profile it reads.
check_python() {
  SIM_PYTHON=$(find_python) || fail "no python found for tests/cluster/make_nodes.py (set GPUINFER_SIM_PYTHON)"
  "$SIM_PYTHON" -c 'import kubernetes, yaml' 2>/dev/null ||
    fail "$SIM_PYTHON lacks the 'kubernetes' and 'PyYAML' packages (make setup / pip install -r requirements.txt, or set GPUINFER_SIM_PYTHON)"
  "$SIM_PYTHON" "$SIM_DIR/make_nodes.py" --profile "$PROFILE" --dry-run >/dev/null ||
    fail "node profile '$PROFILE' cannot be read (tests/cluster/profiles/$PROFILE.yaml)"
}

create_nodes() {
  local python=$SIM_PYTHON
  step "create simulated nodes (profile $PROFILE)"
  local log="$STATE_DIR/logs/make_nodes.log"
  "$python" "$SIM_DIR/make_nodes.py" --kubeconfig "$ADMIN_KUBECONFIG" --profile "$PROFILE" \
    --kubelet-version "$K8S_VERSION" --wait "$NODE_WAIT_S" >"$log" 2>&1 ||
    fail "creating the simulated nodes failed" "$log"
  sed 's/^/  /' "$log" >&2
}

# Static volume pool + default StorageClass, so model cache claims bind (no CSI driver here).
create_storage() {
  step "create the default StorageClass and the volume pool"
  local log="$STATE_DIR/logs/make_storage.log"
  "$SIM_PYTHON" "$SIM_DIR/make_storage.py" --kubeconfig "$ADMIN_KUBECONFIG" >"$log" 2>&1 ||
    fail "creating the storage pool failed" "$log"
  sed 's/^/  /' "$log" >&2
}

wait_default_sa() {
  step "wait for the default ServiceAccount"
  wait_until kube-controller-manager 60 kubectl_sim get serviceaccount default -n default
}

publish_kubeconfig() {
  if [[ -n "$KUBECONFIG_COPY" ]]; then
    mkdir -p "$(dirname "$KUBECONFIG_COPY")"
    cp "$ADMIN_KUBECONFIG" "$KUBECONFIG_COPY"
    chmod 600 "$KUBECONFIG_COPY"
  fi
}

print_info() {
  local nodes
  nodes=$(kubectl_sim get nodes -l sim.gpuinfer.io/managed=true --no-headers 2>/dev/null | wc -l)
  cat <<EOF
gpuinfer sim cluster is up: Kubernetes $K8S_VERSION at https://127.0.0.1:$APISERVER_PORT, $nodes simulated nodes (profile $(cat "$STATE_DIR/profile" 2>/dev/null || echo "$PROFILE"))
kubeconfig: $ADMIN_KUBECONFIG
kubeconfig copy: ${KUBECONFIG_COPY:-none}
use it:  eval "\$(tests/cluster/sim.sh env)"
export KUBECONFIG=$ADMIN_KUBECONFIG; export PATH=$(sim_path):\$PATH
EOF
}

cleanup_failed_up() {
  local rc=$?
  if ((rc != 0)); then
    say "start-up failed; stopping what was started (logs kept in $STATE_DIR/logs)"
    stop_all
  fi
}

cmd_up() {
  while (($#)); do
    case $1 in
      --profile) PROFILE=${2:?--profile needs a name}; PROFILE_EXPLICIT=1; shift 2 ;;
      --profile=*) PROFILE=${1#--profile=}; PROFILE_EXPLICIT=1; shift ;;
      *) CURRENT_STEP="up"; fail "unknown option for up: $1" ;;
    esac
  done
  if is_up; then
    local running
    running=$(cat "$STATE_DIR/profile" 2>/dev/null || echo "?")
    if [[ -n "$PROFILE_EXPLICIT" && "$running" != "$PROFILE" ]]; then
      CURRENT_STEP="up"
      fail "the sim cluster is already up with profile '$running'; run 'tests/cluster/sim.sh down' first to switch to '$PROFILE'"
    fi
    publish_kubeconfig
    say "already up"
    print_info
    return 0
  fi
  local t0=$SECONDS
  ensure_built
  if any_running || [[ -d "$STATE_DIR" ]]; then
    step "clean up a previous, incomplete run"
    stop_all
    remove_state_dir
  fi
  step "pre-flight checks (ports, python, profile) and certificates"
  command -v openssl >/dev/null || fail "openssl is required"
  command -v curl >/dev/null || fail "curl is required"
  check_ports
  check_python
  mkdir -p "$STATE_DIR/pids" "$STATE_DIR/logs"
  touch "$STATE_DIR/$STATE_MARKER"
  echo "$PROFILE" >"$STATE_DIR/profile"
  trap cleanup_failed_up EXIT
  gen_pki
  start_etcd
  start_apiserver
  start_controllers
  start_kwok
  start_lws
  create_nodes
  create_storage
  wait_default_sa
  publish_kubeconfig
  date -u +%FT%TZ >"$STATE_DIR/ready"
  trap - EXIT
  say "up in $((SECONDS - t0))s"
  print_info
}

# Deletes STATE_DIR, but only when it is one that this script created.
remove_state_dir() {
  [[ -d "$STATE_DIR" ]] || return 0
  if [[ ! -f "$STATE_DIR/$STATE_MARKER" ]]; then
    fail "refusing to delete $STATE_DIR: it lacks the marker file $STATE_MARKER (not a sim state dir?)"
  fi
  rm -rf "$STATE_DIR"
}

stop_all() {
  local i
  for ((i = ${#PROCESSES[@]} - 1; i >= 0; i--)); do
    stop_proc "${PROCESSES[i]}"
  done
}

cmd_down() {
  CURRENT_STEP="down"
  if [[ ! -d "$STATE_DIR" ]]; then
    say "nothing to stop (no $STATE_DIR)"
    return 0
  fi
  stop_all
  # Keep the logs of the last run for post-mortems; drop everything else.
  if [[ -d "$STATE_DIR/logs" ]]; then
    rm -rf "$CACHE_DIR/logs/last-run"
    mkdir -p "$CACHE_DIR/logs"
    mv "$STATE_DIR/logs" "$CACHE_DIR/logs/last-run"
  fi
  remove_state_dir
  if [[ -n "$KUBECONFIG_COPY" && -f "$KUBECONFIG_COPY" ]]; then
    rm -f "$KUBECONFIG_COPY"
  fi
  say "down (logs of this run: $CACHE_DIR/logs/last-run)"
}

cmd_status() {
  local p state pid rc=0
  echo "pinned: kubernetes $K8S_VERSION, etcd $(component_version etcd), kwok $(component_version kwok), lws $(component_version lws), helm $(component_version helm)"
  local c
  for c in "${COMPONENTS[@]}"; do
    if component_is_built "$c"; then state=built; else state="not built"; fi
    echo "binaries $c: $state ($(component_bin_dir "$c"))"
  done
  echo "state dir: $STATE_DIR"
  for p in "${PROCESSES[@]}"; do
    if proc_alive "$p"; then
      pid=$(cat "$(pid_file "$p")")
      echo "process $p: running (pid $pid, log $(log_file "$p"))"
    else
      echo "process $p: stopped"
      rc=3
    fi
  done
  if ((rc == 0)) && apiserver_ready; then
    echo "profile: $(cat "$STATE_DIR/profile" 2>/dev/null || echo '?')"
    local total ready
    total=$(kubectl_sim get nodes -l sim.gpuinfer.io/managed=true --no-headers | wc -l)
    ready=$(kubectl_sim get nodes -l sim.gpuinfer.io/managed=true --no-headers | awk '$2=="Ready"' | wc -l)
    echo "nodes: $ready/$total Ready"
    echo "kubeconfig: $ADMIN_KUBECONFIG"
  fi
  return "$rc"
}

cmd_env() {
  # shellcheck disable=SC2016 # $PATH is expanded by the shell that evals this
  printf 'export KUBECONFIG=%q; export PATH=%q:"$PATH"\n' "$ADMIN_KUBECONFIG" "$(sim_path)"
}

usage() {
  sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
}

# One build/up/down at a time per cache dir (e.g. a pytest session and a
# `make sim-up` racing each other).
take_lock() {
  mkdir -p "$CACHE_DIR"
  exec 9>"$CACHE_DIR/.sim.lock"
  if ! flock -n 9; then
    say "waiting for another sim.sh build/up/down to finish (lock $CACHE_DIR/.sim.lock)"
    flock -w "${GPUINFER_SIM_LOCK_TIMEOUT:-3600}" 9 || { CURRENT_STEP=lock; fail "timed out waiting for the lock"; }
  fi
}

main() {
  local cmd=${1:-help}
  [[ $# -gt 0 ]] && shift
  case $cmd in
    build) take_lock; cmd_build ;;
    up) take_lock; cmd_up "$@" ;;
    down) take_lock; cmd_down ;;
    status) cmd_status ;;
    env) cmd_env ;;
    path) sim_path ;;
    kubeconfig) echo "$ADMIN_KUBECONFIG" ;;
    kubectl) exec "$KUBECTL" --kubeconfig "$ADMIN_KUBECONFIG" "$@" ;;
    help | -h | --help) usage ;;
    *) usage >&2; exit 2 ;;
  esac
}

main "$@"
