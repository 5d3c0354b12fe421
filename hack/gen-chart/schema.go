/*
Copyright 2026 The labhook Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package main

// valuesSchema is values.schema.json: Helm checks values against it on
// install, upgrade, template and lint, so a wrong value is refused with
// its path before anything reaches the cluster. Unknown keys are refused
// too: a misspelt value would otherwise be silently ignored.
func valuesSchema() map[string]any {
	str := func(desc string) map[string]any { return map[string]any{"type": "string", "description": desc} }
	pattern := func(desc, re string) map[string]any {
		return map[string]any{"type": "string", "description": desc, "pattern": re}
	}
	boolean := func(desc string) map[string]any { return map[string]any{"type": "boolean", "description": desc} }
	optionalInt := func(desc string, minimum int) map[string]any {
		return map[string]any{"type": []string{"integer", "null"}, "minimum": minimum, "description": desc}
	}
	list := func(desc string, items map[string]any) map[string]any {
		return map[string]any{"type": "array", "items": items, "description": desc}
	}
	obj := func(desc string, props map[string]any, required ...string) map[string]any {
		o := map[string]any{"type": "object", "properties": props, "additionalProperties": false, "description": desc}
		if len(required) > 0 {
			o["required"] = required
		}
		return o
	}
	free := func(typ, desc string) map[string]any { return map[string]any{"type": typ, "description": desc} }

	// A Go duration as the flags take it (no days), or empty.
	duration := `^(([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)?$`
	flag := map[string]any{"type": "string", "pattern": "^--[a-z0-9-]+(=.*)?$"}
	dnsName := `^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$`
	resources := obj("container resources", map[string]any{
		"requests": free("object", "requests"), "limits": free("object", "limits"), "claims": free("array", "claims"),
	})

	return map[string]any{
		"$schema":              "http://json-schema.org/draft-07/schema#",
		"title":                "labhook chart values",
		"type":                 "object",
		"additionalProperties": false,
		"properties": map[string]any{
			"image": obj("the image", map[string]any{
				"repository": map[string]any{"type": "string", "minLength": 1, "description": "image repository"},
				"tag":        str("image tag; empty: the chart's appVersion"),
				"pullPolicy": map[string]any{"type": "string", "enum": []string{"", "Always", "IfNotPresent", "Never"}, "description": "image pull policy"},
			}, "repository"),
			"imagePullSecrets": list("pull Secrets", obj("a pull Secret", map[string]any{"name": str("its name")}, "name")),
			"crds": obj("the CRDs", map[string]any{
				"install": boolean("render the CRDs"),
				"keep":    boolean("keep them on helm uninstall"),
			}),
			"manager": obj("the manager", map[string]any{
				"replicas":                map[string]any{"type": "integer", "minimum": 1, "description": "managers; one leads"},
				"callbackURL":             pattern("--callback-url", `^(https?://[^\s]+)?$`),
				"allowHTTP":               boolean("--allow-http"),
				"allowedTargetCIDRs":      list("--allowed-target-cidrs", map[string]any{"type": "string", "pattern": `^[0-9a-fA-F.:]+/[0-9]{1,3}$`}),
				"messageRetention":        pattern("--message-retention", duration),
				"maxRetainedMessages":     optionalInt("--max-retained-messages", 0),
				"backlogWarning":          optionalInt("--backlog-warning", 1),
				"invalidateAfter":         pattern("--invalidate-after", duration),
				"maxConcurrentDeliveries": optionalInt("--max-concurrent-deliveries", 1),
				"extraArgs":               list("other manager flags", flag),
				"resources":               resources,
				"shards": map[string]any{"type": "array", "uniqueItems": true, "description": "--shard of one more manager Deployment each",
					"items": map[string]any{"type": "string", "pattern": "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", "maxLength": 41}},
			}),
			"webhookserver": obj("the webhookserver", map[string]any{
				"standalone":   boolean("run it as its own Deployment"),
				"replicas":     map[string]any{"type": "integer", "minimum": 1, "description": "replicas when standalone"},
				"rateLimit":    map[string]any{"type": []string{"number", "null"}, "minimum": 0, "description": "--rate-limit"},
				"rateBurst":    optionalInt("--rate-burst", 0),
				"maxBodyBytes": optionalInt("--max-body-bytes", 1),
				"regions":      list("--regions", map[string]any{"type": "string", "pattern": "^[a-z0-9-]+$"}),
				"tls": obj("TLS", map[string]any{
					"secretName": pattern("a kubernetes.io/tls Secret", dnsName),
				}),
				"extraArgs": list("other webhookserver flags", flag),
				"resources": resources,
			}),
			"nodeSelector": free("object", "nodeSelector of both Pods"),
			"tolerations":  free("array", "tolerations of both Pods"),
			"affinity":     free("object", "affinity of both Pods"),
			"monitoring": obj("monitoring with the Prometheus Operator", map[string]any{
				"serviceMonitor": boolean("Service labhook-metrics and a ServiceMonitor"),
				"prometheusRule": boolean("the alerts"),
				"dashboard":      boolean("the Grafana dashboard ConfigMap"),
			}),
		},
	}
}
