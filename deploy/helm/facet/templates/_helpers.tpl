{{/* The chart's name, and the release-qualified name every object starts with. */}}
{{- define "facet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "facet.fullname" -}}
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

{{/* Labels on every object; the selector labels name one component (gateway or triton). */}}
{{- define "facet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: {{ include "facet.name" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "facet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "facet.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "facet.gateway.fullname" -}}
{{- printf "%s-gateway" (include "facet.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "facet.triton.fullname" -}}
{{- printf "%s-triton" (include "facet.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "facet.gateway.secretName" -}}
{{- default (include "facet.gateway.fullname" .) .Values.gateway.secret.existingSecret -}}
{{- end -}}

{{- define "facet.modelRepository.claimName" -}}
{{- default (printf "%s-model-repository" (include "facet.fullname" .)) .Values.modelRepository.existingClaim -}}
{{- end -}}

{{- define "facet.shared.claimName" -}}
{{- default (printf "%s-shared" (include "facet.fullname" .)) .Values.shared.existingClaim -}}
{{- end -}}
