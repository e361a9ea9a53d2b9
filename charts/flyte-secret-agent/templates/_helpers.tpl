{{/*
Shared pieces of the chart. Object names are fixed (not prefixed by the release): the
init-certs arguments, the broker URL in config.json and Flyte's docs name them, and one
release per cluster is the only sensible install (one MutatingWebhookConfiguration).
*/}}

{{/* Labels on every object: kustomize's part-of, Helm's conventional ones, commonLabels. */}}
{{- define "fsa.labels" -}}
app.kubernetes.io/part-of: flyte-secret-agent
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* metadata.annotations from commonAnnotations, if any, indented for metadata. */}}
{{- define "fsa.annotations" -}}
{{- with .Values.commonAnnotations }}
{{- printf "annotations:\n%s" (toYaml . | indent 2) | nindent 2 }}
{{- end }}
{{- end -}}

{{/* <registry>/<repository>:<tag>[@<digest>] of an image block; call with (list $ .image). */}}
{{- define "fsa.imageRef" -}}
{{- $root := index . 0 -}}
{{- $img := index . 1 -}}
{{- $repo := $img.repository -}}
{{- if $img.registry }}{{ $repo = printf "%s/%s" $img.registry $img.repository }}{{ end -}}
{{- $ref := printf "%s:%s" $repo (default $root.Chart.AppVersion $img.tag) -}}
{{- if $img.digest }}{{ $ref = printf "%s@%s" $ref $img.digest }}{{ end -}}
{{- $ref -}}
{{- end -}}

{{- define "fsa.image" -}}
{{- include "fsa.imageRef" (list . .Values.image) -}}
{{- end -}}

{{/* The broker Service's URL, as agents call it. */}}
{{- define "fsa.brokerUrl" -}}
https://flyte-secret-broker.{{ .Release.Namespace }}.svc
{{- end -}}

{{/* init-certs arguments: identical in the Deployment's init container and the CronJob. */}}
{{- define "fsa.initCertsArgs" -}}
- init-certs
- --service-name=flyte-secret-webhook
- --service-port=443
- --secret-name=flyte-secret-webhook-tls
- --ca-secret-name=flyte-secret-webhook-ca
- --webhook-config-name=flyte-secret-webhook
- --webhook-name=flyte-pod-webhook.flyte.org
- --path=/mutate--v1-pod
- --timeout-seconds={{ .Values.webhook.timeoutSeconds }}
{{- if .Values.broker.enabled }}
- --extra-service=name=flyte-secret-broker,secret=flyte-secret-broker-tls
{{- end }}
{{- with .Values.webhook.namespaceSelector }}
- {{ printf "--namespace-selector=%s" (toJson .) | quote }}
{{- end }}
{{- end -}}

{{/* Pod securityContext of every pod (restricted Pod Security level). */}}
{{- define "fsa.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
{{- if not .noFsGroup }}
fsGroup: 65532
{{- end }}
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "fsa.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* The kubelet's automount, projected explicitly (only where a token is needed). */}}
{{- define "fsa.kubeApiAccessVolume" -}}
- name: kube-api-access
  projected:
    defaultMode: 0444
    sources:
      - serviceAccountToken:
          path: token
          expirationSeconds: 3607
      - configMap:
          name: kube-root-ca.crt
          items:
            - key: ca.crt
              path: ca.crt
      - downwardAPI:
          items:
            - path: namespace
              fieldRef:
                fieldPath: metadata.namespace
{{- end -}}

{{/*
affinity of a component: its `affinity` when set, else the anti-affinity preset (soft:
preferred spread over nodes; hard: required; none). Call with (list <component values> <name>
<component>).
*/}}
{{- define "fsa.affinity" -}}
{{- $v := index . 0 -}}
{{- $name := index . 1 -}}
{{- $component := index . 2 -}}
{{- if $v.affinity }}
affinity:
  {{- toYaml $v.affinity | nindent 2 }}
{{- else if eq $v.podAntiAffinityPreset "soft" }}
affinity:
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              app.kubernetes.io/name: {{ $name }}
              app.kubernetes.io/component: {{ $component }}
{{- else if eq $v.podAntiAffinityPreset "hard" }}
affinity:
  podAntiAffinity:
    requiredDuringSchedulingIgnoredDuringExecution:
      - topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            app.kubernetes.io/name: {{ $name }}
            app.kubernetes.io/component: {{ $component }}
{{- end }}
{{- end -}}

{{/* nodeSelector, tolerations, priorityClassName and imagePullSecrets of a pod spec. */}}
{{- define "fsa.scheduling" -}}
{{- $root := index . 0 -}}
{{- $v := index . 1 -}}
{{- with $v.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with $root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/*
config.json: `config` without its null keys, plus agentImage / agentPullPolicy from
`agent.image`; a kubernetes backend with `broker: {}` gets this release's broker URL (no
broker at all when `broker.enabled` is false).
*/}}
{{- define "fsa.configJson" -}}
{{- $cfg := dict -}}
{{- range $k, $v := .Values.config -}}
{{- if not (kindIs "invalid" $v) }}{{ $_ := set $cfg $k $v }}{{ end -}}
{{- end -}}
{{- $backends := list -}}
{{- range $b := (default (list) $cfg.backends) -}}
{{- $b = deepCopy $b -}}
{{- if and (eq (toString $b.type) "kubernetes") (hasKey $b "broker") (not $b.broker) -}}
{{- if $.Values.broker.enabled -}}
{{- $ref := dict "url" (include "fsa.brokerUrl" $) -}}
{{- with $.Values.broker.audience }}{{ $_ := set $ref "audience" . }}{{ end -}}
{{- $_ := set $b "broker" $ref -}}
{{- else -}}
{{- /* No broker: managed secrets fall through to the next backend. */ -}}
{{- $_ := unset $b "broker" -}}
{{- end -}}
{{- end -}}
{{- $backends = append $backends $b -}}
{{- end -}}
{{- if hasKey $cfg "backends" }}{{ $_ := set $cfg "backends" $backends }}{{ end -}}
{{- $_ := set $cfg "agentImage" (include "fsa.imageRef" (list . .Values.agent.image)) -}}
{{- $_ := set $cfg "agentPullPolicy" .Values.agent.image.pullPolicy -}}
{{- toPrettyJson $cfg -}}
{{- end -}}
