#!/usr/bin/env bash
# A real single-node Kubernetes cluster on this machine, entirely inside a network namespace
# this script creates: etcd, kube-apiserver, kube-controller-manager, kube-scheduler,
# containerd (Debian), kubelet, kube-proxy (iptables mode), CoreDNS and an image registry.
# The node address sits on the namespace's lo as a /32, pods on a bridge, the Service range
# and the registry exist only there; nothing is routed off the machine.
#
#   hack/cluster/cluster.sh up      build once / reuse binaries, start everything (idempotent)
#   hack/cluster/cluster.sh down    stop everything and restore the machine (idempotent)
#   hack/cluster/cluster.sh exec CMD...   run CMD inside the namespace with KUBECONFIG set
#   hack/cluster/cluster.sh status
#
# Components run in the namespace with `nsenter --net` (network namespace only): unlike
# `ip netns exec`, which also gives each process a private mount namespace, kubelet's volume
# mounts (the projected service-account token, Secrets) must be seen by containerd.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
NS="${CLUSTER_NETNS:-dnst}"
STATE="${CLUSTER_STATE:-/tmp/dns-tuner-cluster}"
NODE_IP="${CLUSTER_NODE_IP:-10.200.0.1}"
NODE_NAME="${CLUSTER_NODE_NAME:-realnode}"
NODE_SEARCH="${CLUSTER_NODE_SEARCH:-realnode.test}"
POD_CIDR=10.244.0.0/24
SVC_CIDR=10.96.0.0/16
API_SVC_IP=10.96.0.1
DNS_IP=10.96.0.10
REGISTRY="$NODE_IP:5000"
CGROUP=/sys/fs/cgroup/pids/dns-tuner-cluster
ENVTEST_BIN="$("$ROOT/hack/build-envtest.sh" --print-dir)"
CLUSTER_BIN="$("$ROOT/hack/cluster/build.sh" --print-dir)"
PAUSE_IMAGE="$REGISTRY/pause:3.10"
COREDNS_IMAGE="$REGISTRY/coredns:1.14"
export GOTOOLCHAIN=local

log() { echo "[cluster $(date -u +%T)] $*" >&2; }
inns() { nsenter --net="/run/netns/$NS" -- "$@"; }
kc() { inns "$CLUSTER_BIN/kubectl" --kubeconfig "$STATE/admin.kubeconfig" "$@"; }

# start NAME CMD...: run CMD in the namespace in the background, PID in $STATE/pids/NAME.
start() {
  local name=$1; shift
  local pidf="$STATE/pids/$name"
  if [[ -f $pidf ]] && kill -0 "$(cat "$pidf")" 2>/dev/null; then return 0; fi
  nsenter --net="/run/netns/$NS" -- setsid "$@" >>"$STATE/logs/$name.log" 2>&1 < /dev/null &
  echo $! > "$pidf"
  # every process the cluster starts, and their children (containerd's shims), are tracked
  # in one pids cgroup so down can end exactly them
  mkdir -p "$CGROUP" && echo $! > "$CGROUP/cgroup.procs"
}

# stop NAME: TERM, then KILL after 10 s, the process recorded in $STATE/pids/NAME.
stop() {
  local pidf="$STATE/pids/$1" pid i
  [[ -f $pidf ]] || return 0
  pid="$(cat "$pidf")"
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidf"
}

# wait_for WHAT SECONDS CMD...: poll CMD every 0.2 s.
wait_for() {
  local what=$1 secs=$2 i; shift 2
  for ((i = 0; i < secs * 5; i++)); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
  log "timed out after ${secs}s waiting for $what"; return 1
}

# write_if_changed FILE: stdin to FILE only when it differs (kube-proxy exits whenever its
# config file is rewritten, even with identical content).
write_if_changed() {
  local tmp; tmp="$(mktemp)"; cat > "$tmp"
  if [[ -f $1 ]] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; else mv "$tmp" "$1"; fi
}

# kubelet tunes these machine-wide (they are not per network namespace): restored by down
host_paths=(/run/containerd /var/lib/cni /var/log/containers /var/lib/kubelet)
sysctls=(kernel.panic kernel.panic_on_oops vm.overcommit_memory vm.panic_on_oom kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

netns_up() {
  if [[ ! -e /run/netns/$NS ]]; then
    # /run/netns becomes a mount point the first time `ip netns add` runs: remember whether
    # it was one, so down can leave it as it was.
    [[ -f $STATE/netns-mount-before ]] || { mountpoint -q /run/netns && echo yes || echo no; } > "$STATE/netns-mount-before"
    ip netns add "$NS"
  fi
  inns ip link set lo up
  inns ip addr show dev lo | grep -q " $NODE_IP/32" || inns ip addr add "$NODE_IP/32" dev lo
  # locally generated traffic to Service IPs (kube-apiserver calling the webhook) needs a
  # route before kube-proxy's OUTPUT DNAT rewrites it to a pod address
  inns ip route replace "$SVC_CIDR" dev lo src "$NODE_IP"
  inns sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
  # nothing leaves the bridge except to the node itself (there is no other interface, but
  # keep it explicit)
  inns iptables -C FORWARD -i cni0 ! -o cni0 -j DROP 2>/dev/null || inns iptables -I FORWARD -i cni0 ! -o cni0 -j DROP
}

pki() {
  local d=$STATE/pki; mkdir -p "$d"
  [[ -f $d/ca.crt ]] && return 0
  log "certificates and tokens"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout "$d/ca.key" -out "$d/ca.crt" -days 3650 -subj "/CN=dns-tuner-cluster-ca" 2>/dev/null
  cat > "$d/apiserver.ext" <<EXT
subjectAltName=DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,IP:$API_SVC_IP,IP:$NODE_IP,IP:127.0.0.1
extendedKeyUsage=serverAuth
EXT
  openssl req -newkey rsa:2048 -nodes -keyout "$d/apiserver.key" -out "$d/apiserver.csr" -subj "/CN=kube-apiserver" 2>/dev/null
  openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 365 -extfile "$d/apiserver.ext" -out "$d/apiserver.crt" 2>/dev/null
  printf 'extendedKeyUsage=clientAuth\n' > "$d/client.ext"
  openssl req -newkey rsa:2048 -nodes -keyout "$d/kubelet-client.key" -out "$d/kubelet-client.csr" -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" 2>/dev/null
  openssl x509 -req -in "$d/kubelet-client.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -days 365 -extfile "$d/client.ext" -out "$d/kubelet-client.crt" 2>/dev/null
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
  # static tokens: one identity per component, as kubeadm's certificates would give them
  local user tok
  : > "$d/tokens.csv"
  for user in admin:system:masters node:system:nodes controller-manager: scheduler: proxy:; do
    tok="$(openssl rand -hex 16)"
    case ${user%%:*} in
      admin) echo "$tok,admin,admin,system:masters" >> "$d/tokens.csv" ;;
      node) echo "$tok,system:node:$NODE_NAME,node,system:nodes" >> "$d/tokens.csv" ;;
      controller-manager) echo "$tok,system:kube-controller-manager,kcm" >> "$d/tokens.csv" ;;
      scheduler) echo "$tok,system:kube-scheduler,scheduler" >> "$d/tokens.csv" ;;
      proxy) echo "$tok,system:kube-proxy,proxy" >> "$d/tokens.csv" ;;
    esac
    kubeconfig "${user%%:*}" "$tok"
  done
}

kubeconfig() {
  cat > "$STATE/$1.kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "https://$NODE_IP:6443", certificate-authority: "$STATE/pki/ca.crt"}
users:
- name: $1
  user: {token: "$2"}
contexts:
- name: local
  context: {cluster: local, user: $1}
current-context: local
KC
}

containerd_config() {
  mkdir -p "$STATE/containerd" "$STATE/cni/net.d"
  write_if_changed "$STATE/containerd/config.toml" <<TOML
version = 2
root = "$STATE/containerd/root"
state = "$STATE/containerd/state"
[grpc]
  address = "$STATE/containerd/containerd.sock"
[ttrpc]
  address = "$STATE/containerd/containerd.sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # this VM withholds CAP_SYS_RESOURCE even from root: runc cannot set oom_score_adj -998
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$STATE/cni/net.d"
  [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
      SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".registry.mirrors."$REGISTRY"]
    endpoint = ["http://$REGISTRY"]
TOML
  write_if_changed "$STATE/cni/net.d/10-dnst.conflist" <<JSON
{
  "cniVersion": "1.0.0",
  "name": "dnst",
  "plugins": [
    {
      "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {"type": "host-local", "dataDir": "$STATE/cni/ipam",
               "ranges": [[{"subnet": "$POD_CIDR"}]], "routes": [{"dst": "0.0.0.0/0"}]}
    }
  ]
}
JSON
}

kubelet_config() {
  printf 'search %s\nnameserver %s\n' "$NODE_SEARCH" "$NODE_IP" | write_if_changed "$STATE/node-resolv.conf"
  write_if_changed "$STATE/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
# cgroup v1 here: kubelet 1.37 refuses it unless told; containerd 1.6 cannot report its
# cgroup driver (no RuntimeConfig), so name it
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
address: $NODE_IP
readOnlyPort: 0
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: "$STATE/pki/ca.crt"}
authorization: {mode: Webhook}
clusterDomain: cluster.local
clusterDNS: [$DNS_IP]
resolvConf: "$STATE/node-resolv.conf"
containerRuntimeEndpoint: "unix://$STATE/containerd/containerd.sock"
podLogsDir: "$STATE/pod-logs"
serializeImagePulls: false
imageGCHighThresholdPercent: 100
evictionHard: {memory.available: "50Mi", nodefs.available: "1%", imagefs.available: "1%"}
nodeStatusReportFrequency: 10s
syncFrequency: 10s
YAML
}

kube_proxy_config() {
  write_if_changed "$STATE/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: "$STATE/proxy.kubeconfig"}
mode: iptables
clusterCIDR: $POD_CIDR
hostnameOverride: $NODE_NAME
bindAddress: $NODE_IP
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
# leave the conntrack sysctls alone (nf_conntrack_max is global)
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
YAML
}

images() {
  local ctl=$CLUSTER_BIN/clusterctl
  inns curl -fsS "http://$REGISTRY/v2/pause/manifests/3.10" -o /dev/null 2>/dev/null && return 0
  log "images: pause, coredns"
  inns "$ctl" image -push "$PAUSE_IMAGE" -file "/pause=$CLUSTER_BIN/pause" -entrypoint /pause -user 65535:65535 >/dev/null
  inns "$ctl" image -push "$COREDNS_IMAGE" -file "/coredns=$CLUSTER_BIN/coredns" -entrypoint /coredns >/dev/null
}

# the node's prerequisites that are not Kubernetes objects
addons() {
  kc apply -f - >/dev/null <<YAML
# What kubeadm writes: dns-tuner reads kube-proxy's mode from it (raceFix auto).
apiVersion: v1
kind: ConfigMap
metadata: {name: kube-proxy, namespace: kube-system}
data:
  config.conf: |
    apiVersion: kubeproxy.config.k8s.io/v1alpha1
    kind: KubeProxyConfiguration
    mode: iptables
---
apiVersion: v1
kind: ServiceAccount
metadata: {name: coredns, namespace: kube-system}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- apiGroups: [""]
  resources: [endpoints, services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects: [{kind: ServiceAccount, name: coredns, namespace: kube-system}]
---
apiVersion: v1
kind: ConfigMap
metadata: {name: coredns, namespace: kube-system}
data:
  # No forward plugin: names outside the cluster are never sent off the machine. They get
  # NXDOMAIN, as from a real upstream, not the SERVFAIL of a missing next plugin: musl ends a
  # search-list walk with EAI_AGAIN on the first SERVFAIL (here for <name>.realnode.test).
  Corefile: |
    # kubeadm's Corefile otherwise: lameduck keeps a terminating CoreDNS answering while
    # kube-proxy still sends it queries
    cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {
        errors
        log
        health :8080 {
            lameduck 5s
        }
        ready :8181
        kubernetes cluster.local in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 30
        }
        cache 30
        loadbalance
    }
    .:53 {
        errors
        log
        template ANY ANY {
            rcode NXDOMAIN
        }
    }
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: coredns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  replicas: 1
  selector: {matchLabels: {k8s-app: kube-dns}}
  template:
    metadata: {labels: {k8s-app: kube-dns}}
    spec:
      serviceAccountName: coredns
      dnsPolicy: Default
      containers:
      - name: coredns
        image: $COREDNS_IMAGE
        args: [-conf, /etc/coredns/Corefile]
        ports:
        - {name: dns, containerPort: 53, protocol: UDP}
        - {name: dns-tcp, containerPort: 53, protocol: TCP}
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
          periodSeconds: 1
        volumeMounts: [{name: config, mountPath: /etc/coredns}]
      volumes: [{name: config, configMap: {name: coredns}}]
---
apiVersion: v1
kind: Service
metadata: {name: kube-dns, namespace: kube-system, labels: {k8s-app: kube-dns}}
spec:
  clusterIP: $DNS_IP
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
YAML
}

up() {
  local t0=$SECONDS
  [[ $EUID -eq 0 ]] || { echo "cluster.sh up needs root" >&2; exit 1; }
  "$ROOT/hack/cluster/deps.sh"
  "$ROOT/hack/build-envtest.sh" >/dev/null
  "$ROOT/hack/cluster/build.sh" >/dev/null
  [[ -x $CLUSTER_BIN/clusterctl ]] || go build -C "$ROOT" -o "$CLUSTER_BIN/clusterctl" ./hack/cluster/clusterctl
  mkdir -p "$STATE"/{pids,logs,etcd,pod-logs}
  [[ -f $STATE/sysctls ]] || for s in "${sysctls[@]}"; do echo "$s=$(sysctl -n "$s")"; done > "$STATE/sysctls"
  # paths containerd, CNI and kubelet create whatever they are told: down removes the ones
  # that were not there before
  local p
  if [[ ! -f $STATE/created-paths ]]; then
    for p in "${host_paths[@]}"; do [[ -e $p ]] || echo "$p"; done > "$STATE/created-paths"
  fi
  netns_up
  pki
  containerd_config
  kubelet_config
  kube_proxy_config
  log "control plane"
  start registry "$CLUSTER_BIN/clusterctl" registry -addr "$REGISTRY"
  start etcd "$ENVTEST_BIN/etcd" --data-dir "$STATE/etcd" --listen-client-urls http://127.0.0.1:2379 \
    --advertise-client-urls http://127.0.0.1:2379 --listen-peer-urls http://127.0.0.1:2380 \
    --initial-advertise-peer-urls http://127.0.0.1:2380 --initial-cluster default=http://127.0.0.1:2380 \
    --unsafe-no-fsync
  start kube-apiserver "$ENVTEST_BIN/kube-apiserver" --etcd-servers http://127.0.0.1:2379 \
    --advertise-address "$NODE_IP" --secure-port 6443 --service-cluster-ip-range "$SVC_CIDR" \
    --tls-cert-file "$STATE/pki/apiserver.crt" --tls-private-key-file "$STATE/pki/apiserver.key" \
    --client-ca-file "$STATE/pki/ca.crt" --token-auth-file "$STATE/pki/tokens.csv" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$STATE/pki/sa.pub" --service-account-signing-key-file "$STATE/pki/sa.key" \
    --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction --allow-privileged \
    --kubelet-client-certificate "$STATE/pki/kubelet-client.crt" --kubelet-client-key "$STATE/pki/kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP --cert-dir "$STATE/pki/apiserver-generated"
  wait_for "containerd-independent registry" 20 inns curl -fsS "http://$REGISTRY/v2/"
  images
  start containerd /usr/bin/containerd --config "$STATE/containerd/config.toml"
  wait_for kube-apiserver 120 inns curl -fsS --cacert "$STATE/pki/ca.crt" "https://$NODE_IP:6443/readyz"
  start kube-controller-manager "$CLUSTER_BIN/kube-controller-manager" --kubeconfig "$STATE/controller-manager.kubeconfig" \
    --service-account-private-key-file "$STATE/pki/sa.key" --root-ca-file "$STATE/pki/ca.crt" \
    --use-service-account-credentials --bind-address 127.0.0.1 --leader-elect=false
  start kube-scheduler "$CLUSTER_BIN/kube-scheduler" --kubeconfig "$STATE/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false
  wait_for containerd 30 test -S "$STATE/containerd/containerd.sock"
  log "node"
  start kubelet "$CLUSTER_BIN/kubelet" --config "$STATE/kubelet.yaml" --kubeconfig "$STATE/node.kubeconfig" \
    --root-dir "$STATE/kubelet" --cert-dir "$STATE/kubelet/pki" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP"
  start kube-proxy "$CLUSTER_BIN/kube-proxy" --config "$STATE/kube-proxy.yaml"
  wait_for "node Ready" 90 node_ready
  addons
  wait_for "default ServiceAccount" 60 kc -n default get serviceaccount default
  kc -n kube-system rollout status deployment/coredns --timeout=120s >/dev/null
  log "up in $((SECONDS - t0))s: KUBECONFIG=$STATE/admin.kubeconfig inside netns $NS (hack/cluster/cluster.sh exec CMD)"
}

node_ready() {
  [[ "$(kc get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

down() {
  local t0=$SECONDS
  [[ -d $STATE ]] || { [[ -e /run/netns/$NS ]] || return 0; }
  mkdir -p "$STATE/pids"
  if [[ -e /run/netns/$NS ]]; then
    stop kubelet
    # pods first, through the runtime, so CNI DEL runs and frees the bridge addresses
    if [[ -S $STATE/containerd/containerd.sock ]]; then
      inns timeout 60 "$CLUSTER_BIN/crictl" --runtime-endpoint "unix://$STATE/containerd/containerd.sock" rmp -fa >/dev/null 2>&1 || true
    fi
  fi
  local c
  for c in kube-proxy kube-scheduler kube-controller-manager kube-apiserver containerd; do stop "$c" & done
  wait
  stop etcd; stop registry
  # whatever is left in the pod cgroups (shims, containers) ends here
  local cg pids i p
  for cg in /sys/fs/cgroup/*/kubepods; do
    [[ -d $cg ]] || continue
    pids="$(find "$cg" -name cgroup.procs -exec cat {} + 2>/dev/null | sort -u)"
    [[ -n $pids ]] && kill -KILL $pids 2>/dev/null || true
  done
  for cg in /sys/fs/cgroup/*/kubepods; do
    [[ -d $cg ]] && find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
  if [[ -d $CGROUP ]]; then
    pids="$(cat "$CGROUP/cgroup.procs")"
    [[ -n $pids ]] && kill -KILL $pids 2>/dev/null || true
    for i in $(seq 50); do [[ -z "$(cat "$CGROUP/cgroup.procs")" ]] && break; sleep 0.1; done
    rmdir "$CGROUP" 2>/dev/null || true
  fi
  # mounts left by kubelet and containerd (volumes, rootfs, shm), deepest first
  if [[ -d $STATE ]]; then
    awk -v s="$STATE" 'index($2, s) == 1 {print $2}' /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  fi
  for c in /run/netns/cni-*; do [[ -e $c ]] && { umount "$c" 2>/dev/null; rm -f "$c"; }; done
  [[ -e /run/netns/$NS ]] && ip netns del "$NS"
  # containerd 1.6 bind-mounts /run/netns onto itself; ip netns add does the same
  if [[ "$(cat "$STATE/netns-mount-before" 2>/dev/null)" == no ]]; then
    while mountpoint -q /run/netns; do umount /run/netns 2>/dev/null || break; done
    rmdir /run/netns 2>/dev/null || true
  fi
  # shim sockets in the path containerd 1.6 hard-codes
  if [[ -f $STATE/sysctls ]]; then
    while IFS='=' read -r k v; do sysctl -qw "$k=$v"; done < "$STATE/sysctls"
  fi
  # (/run/containerd/s holds the shim sockets, a path containerd 1.6 hard-codes)
  if [[ -f $STATE/created-paths ]]; then
    while read -r p; do [[ -n $p ]] && rm -rf "$p"; done < "$STATE/created-paths"
  fi
  # keep the logs for a post-mortem, in the git-ignored tmp/ of the checkout
  if [[ -d $STATE/logs ]]; then
    rm -rf "$ROOT/tmp/cluster-logs"; mkdir -p "$ROOT/tmp"; cp -r "$STATE/logs" "$ROOT/tmp/cluster-logs"
    cp -rL "$STATE/pod-logs" "$ROOT/tmp/cluster-logs/pods" 2>/dev/null || true
  fi
  rm -rf "$STATE"
  log "down in $((SECONDS - t0))s"
}

status() {
  local c
  for c in registry etcd kube-apiserver containerd kube-controller-manager kube-scheduler kubelet kube-proxy; do
    if [[ -f $STATE/pids/$c ]] && kill -0 "$(cat "$STATE/pids/$c")" 2>/dev/null; then echo "$c running"; else echo "$c stopped"; fi
  done
  [[ -e /run/netns/$NS ]] && kc get nodes,pods -A -o wide 2>/dev/null || true
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  exec) shift; KUBECONFIG=$STATE/admin.kubeconfig CLUSTER_BIN=$CLUSTER_BIN CLUSTER_REGISTRY=$REGISTRY CLUSTER_STATE=$STATE exec nsenter --net="/run/netns/$NS" -- "$@" ;;
  kubectl) shift; kc "$@" ;;
  *) echo "usage: $0 up|down|status|exec CMD...|kubectl ARGS..." >&2; exit 2 ;;
esac
