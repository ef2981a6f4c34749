{{/* The chart's name, overridable. */}}
{{- define "wirelens.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: objects are named after it. */}}
{{- define "wirelens.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Labels that select the agent's pods (never change across upgrades). */}}
{{- define "wirelens.selectorLabels" -}}
app.kubernetes.io/name: {{ include "wirelens.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "wirelens.labels" -}}
{{ include "wirelens.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* The service account the agent runs as. */}}
{{- define "wirelens.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "wirelens.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The OTEL_EXPORTER_OTLP_HEADERS value from the headers map: k1=v1,k2=v2, sorted. */}}
{{- define "wirelens.otlpHeaders" -}}
{{- $pairs := list -}}
{{- range $key, $value := .Values.otlp.headers -}}
{{- $pairs = append $pairs (printf "%s=%s" $key $value) -}}
{{- end -}}
{{- join "," $pairs -}}
{{- end -}}
