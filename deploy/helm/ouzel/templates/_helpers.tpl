{{- define "ouzel.labels" -}}
app.kubernetes.io/name: ouzel
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}
{{- define "ouzel.selector" -}}
app.kubernetes.io/name: ouzel
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "ouzel.modelUrl" -}}
{{- if .Values.llmd.enabled -}}
http://{{ .Release.Name }}-llmd:{{ .Values.llmd.port }}/v1
{{- else -}}
http://{{ .Release.Name }}-vllm:{{ .Values.vllm.port }}/v1
{{- end -}}
{{- end -}}
