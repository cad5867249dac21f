# shellcheck shell=bash
# Shared settings for e2e/setup, e2e/hostctl and e2e/gen-apidata. Sourced, not run.

# shellcheck disable=SC2034 # used by the scripts that source this file
E2E_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# Versions of everything the harness builds. Bump here (and regenerate
# e2e/go/kube with e2e/go/kube/update-gomod.sh when KUBE_VERSION changes).
KUBE_VERSION=v1.37.2
ETCD_VERSION=v3.6.16
KWOK_VERSION=v0.8.0
HELM_VERSION=v3.22.0
# Helm 4 applies server-side by default (e2e/go/helm4 pins the same version).
HELM4_VERSION=v4.3.2
PY_KUBERNETES_VERSION=37.0.2
# Upstream's client-go operator of the Foo custom resource (v0.37.2 is not
# served by the module proxy). Pinned in e2e/go/sample-controller/go.mod too.
SAMPLE_CONTROLLER_VERSION=v0.37.1
# cert-manager: its CRDs, its admission webhook server (built from the
# module's internal/webhook by e2e/go/cert-manager-webhook, which pins the
# same version) and its Helm chart's webhook configurations.
CERT_MANAGER_VERSION=v1.21.2
# Third-party CRD sets the CRD tests apply unmodified (module@version).
CRD_MODULES=(
  sigs.k8s.io/gateway-api@v1.6.3
  "github.com/cert-manager/cert-manager@$CERT_MANAGER_VERSION"
  github.com/prometheus-operator/prometheus-operator@v0.85.0
)

# Built artifacts live outside the clone so fresh clones on the same machine reuse them.
NESTKUBE_E2E_CACHE=${NESTKUBE_E2E_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nestkube-e2e}

kube_dir() { echo "$NESTKUBE_E2E_CACHE/kube-$KUBE_VERSION"; }
etcd_dir() { echo "$NESTKUBE_E2E_CACHE/etcd-$ETCD_VERSION"; }
kwok_dir() { echo "$NESTKUBE_E2E_CACHE/kwok-$KWOK_VERSION"; }
helm_dir() { echo "$NESTKUBE_E2E_CACHE/helm-$HELM_VERSION"; }
helm4_dir() { echo "$NESTKUBE_E2E_CACHE/helm-$HELM4_VERSION"; }
checker_dir() { echo "$NESTKUBE_E2E_CACHE/checker-$KUBE_VERSION"; }
sample_controller_dir() { echo "$NESTKUBE_E2E_CACHE/sample-controller-$SAMPLE_CONTROLLER_VERSION"; }
cert_manager_dir() { echo "$NESTKUBE_E2E_CACHE/cert-manager-$CERT_MANAGER_VERSION"; }
pyvenv_dir() { echo "$NESTKUBE_E2E_CACHE/python-kubernetes-$PY_KUBERNETES_VERSION"; }
crds_dir() { echo "$NESTKUBE_E2E_CACHE/crds-$(printf '%s\n' "${CRD_MODULES[@]}" | sha256sum | cut -c1-12)"; }

KUBE_APISERVER_BIN() { echo "$(kube_dir)/kube-apiserver"; }

die() { echo "error: $*" >&2; exit 1; }
log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
