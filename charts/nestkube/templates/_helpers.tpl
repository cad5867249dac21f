{{/* Full name of the release's objects. */}}
{{- define "nestkube.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "nestkube.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "nestkube.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* Labels selecting the nestkube pods. */}}
{{- define "nestkube.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The ServiceAccount the pods run as. */}}
{{- define "nestkube.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "nestkube.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The Service's in-cluster DNS name. */}}
{{- define "nestkube.serviceHost" -}}
{{- printf "%s.%s.svc" (include "nestkube.fullname" .) .Release.Namespace -}}
{{- end -}}

{{/* The URL written into tenant kubeconfigs. */}}
{{- define "nestkube.tenantEndpoint" -}}
{{- if .Values.tenantEndpoint.url -}}
{{- .Values.tenantEndpoint.url -}}
{{- else -}}
{{- printf "https://%s:%v" (include "nestkube.serviceHost" .) .Values.service.port -}}
{{- end -}}
{{- end -}}

{{/* What the syncer and provisioning touch in the namespaces holding
       VirtualClusters and tenant pods (docs/install.md explains each rule). */}}
{{- define "nestkube.namespacedRules" }}
# Tenant objects synced down (labelled tenancy.nestkube.io/vc-uid), and the
# <name>-kubeconfig Secret beside each VirtualCluster.
- apiGroups: [""]
  resources: [pods, configmaps, secrets, services, endpoints, persistentvolumeclaims]
  verbs: [get, list, watch, create, update, patch, delete, deletecollection]
# The ResourceQuota of a VirtualCluster's spec.limits.syncedQuota (only ones
# it labelled tenancy.nestkube.io/vc-uid are ever changed).
- apiGroups: [""]
  resources: [resourcequotas]
  verbs: [get, list, create, update, delete, deletecollection]
# Ingresses and NetworkPolicies, synced when a VirtualCluster's spec.sync enables them.
- apiGroups: [networking.k8s.io]
  resources: [ingresses, networkpolicies]
  verbs: [get, list, watch, create, update, patch, delete, deletecollection]
# kubectl logs / exec / attach / port-forward of tenant pods.
- apiGroups: [""]
  resources: [pods/log, pods/exec, pods/attach, pods/portforward]
  verbs: [get, create]
# Events about synced objects flow up to the virtual clusters.
- apiGroups: ["", events.k8s.io]
  resources: [events]
  verbs: [get, list, watch]
{{- end }}
