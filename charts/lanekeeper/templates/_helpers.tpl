{{/* The release's full name: the release name, prefixed to the chart's name unless it holds it. */}}
{{- define "lanekeeper.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels of every object; selectorLabels the ones a selector matches (never changed). */}}
{{- define "lanekeeper.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "lanekeeper.labels" -}}
{{ include "lanekeeper.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* The image: the controller's, and the one it gives the lanes' supervisor and autopilot pods. */}}
{{- define "lanekeeper.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "lanekeeper.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "lanekeeper.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name: the ServiceAccount to run as, when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The namespace whose Lanes are reconciled (without allNamespaces). */}}
{{- define "lanekeeper.watchNamespace" -}}
{{- default .Release.Namespace .Values.watchNamespace -}}
{{- end -}}

{{/* Leader election: asked for, or more than one replica (two would both act otherwise). */}}
{{- define "lanekeeper.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) -}}true{{- end -}}
{{- end -}}

{{/* rbac-verbs.yaml: the rules the controller needs, in one file. */}}
{{- define "lanekeeper.rules" -}}
{{- $rules := .Files.Get "rbac-verbs.yaml" | fromYaml -}}
{{- toYaml (get $rules .section) -}}
{{- end -}}
