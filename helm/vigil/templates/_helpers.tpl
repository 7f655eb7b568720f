{{/* Names ---------------------------------------------------------------- */}}

{{- define "vigil.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "vigil" for the release "vigil", else "<release>-vigil" */}}
{{- define "vigil.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* the operator's objects: "vigil-operator" for the release "vigil" */}}
{{- define "vigil.operator.fullname" -}}
{{- printf "%s-operator" (include "vigil.fullname" . | trunc 54 | trimSuffix "-") }}
{{- end }}

{{- define "vigil.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels --------------------------------------------------------------- */}}

{{- define "vigil.labels" -}}
helm.sh/chart: {{ include "vigil.chart" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: vigil
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "vigil.operator.selectorLabels" -}}
app.kubernetes.io/name: vigil-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vigil.operator.labels" -}}
{{ include "vigil.labels" . }}
app.kubernetes.io/name: vigil-operator
app.kubernetes.io/component: operator
{{- end }}

{{/* metadata.annotations from commonAnnotations and extra ones (a dict) */}}
{{- define "vigil.annotations" -}}
{{- $all := merge (deepCopy (.extra | default dict)) (deepCopy (.root.Values.commonAnnotations | default dict)) }}
{{- with $all }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Image ---------------------------------------------------------------- */}}

{{- define "vigil.operator.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* RBAC: the rules of files/operator-rbac.yaml (a copy of the repository's
config/rbac/operator.yaml), so the chart grants exactly what the project
ships and tests. Argument: the kind ("ClusterRole" or "Role"). */}}
{{- define "vigil.rbacRules" -}}
{{- $kind := .kind }}
{{- $found := false }}
{{- range $doc := splitList "\n---" (.root.Files.Get "files/operator-rbac.yaml") }}
{{- $o := fromYaml $doc }}
{{- if and (not $found) (eq (get $o "kind" | toString) $kind) }}
{{- $found = true }}
{{- toYaml (required (printf "files/operator-rbac.yaml: %s without rules" $kind) $o.rules) }}
{{- end }}
{{- end }}
{{- if not $found }}
{{- fail (printf "files/operator-rbac.yaml has no %s" $kind) }}
{{- end }}
{{- end }}

{{/* Checks of combinations the schema cannot express -------------------- */}}

{{- define "vigil.validate" -}}
{{- if and (gt (int .Values.replicas) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicas > 1 needs leaderElection.enabled=true: without a leader every replica would write" }}
{{- end }}
{{- end }}
