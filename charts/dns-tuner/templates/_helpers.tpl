{{- define "dns-tuner.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dns-tuner.fullname" -}}
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

{{- define "dns-tuner.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dns-tuner.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "dns-tuner.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "dns-tuner.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: dns-tuner
{{- end }}

{{- define "dns-tuner.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "dns-tuner.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "dns-tuner.webhookServiceName" -}}
{{- printf "%s-webhook" (include "dns-tuner.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "dns-tuner.certSecretName" -}}
{{- if eq .Values.certs.mode "provided" }}
{{- required "certs.secretName is required when certs.mode is provided" .Values.certs.secretName }}
{{- else }}
{{- default (printf "%s-webhook-cert" (include "dns-tuner.fullname" .)) .Values.certs.secretName }}
{{- end }}
{{- end }}

{{- define "dns-tuner.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* Fails rendering early on a certs.mode typo instead of silently serving without a certificate. */}}
{{- define "dns-tuner.validate" -}}
{{- if not (has .Values.certs.mode (list "self-managed" "cert-manager" "provided")) }}
{{- fail (printf "certs.mode %q: want self-managed, cert-manager or provided" .Values.certs.mode) }}
{{- end }}
{{- end }}
