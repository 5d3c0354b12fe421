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

// Package prometheus_test checks config/prometheus against what labhook
// exports: the alerting rules load with Prometheus' own rule parser, every
// metric a rule or a dashboard panel names is registered by the
// controllers or the webhookserver (or produced by kube-state-metrics with
// kube-state-metrics.yaml, whose paths must exist in the CRD), and every
// alert has a runbook section in docs/operations.md. Renaming a metric, a
// status field or a runbook heading makes it fail.
package prometheus_test

import (
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/controller-runtime/pkg/metrics"
	"sigs.k8s.io/yaml"

	// Their init functions register labhook's metrics in
	// controller-runtime's registry, which both binaries serve.
	_ "github.com/labhook/labhook/controllers"
	_ "github.com/labhook/labhook/webhookserver"
)

const (
	root       = "../../.."
	promDir    = ".."
	runbookURL = "https://github.com/labhook/labhook/blob/main/docs/operations.md#"
)

var promql = parser.NewParser(parser.Options{})

// registered says whether a collector with this metric name is registered
// in controller-runtime's registry. The registry cannot list its
// collectors, and a vector without children gathers nothing, so ask it:
// registering a probe under a name already taken fails (another help text),
// under a free name succeeds and is undone.
func registered(name string) bool {
	if !model.LegacyValidation.IsValidMetricName(name) {
		return false
	}
	probe := prometheus.NewGauge(prometheus.GaugeOpts{Name: name, Help: "probe of " + name + " by the rules test"})
	if err := metrics.Registry.Register(probe); err != nil {
		return true
	}
	metrics.Registry.Unregister(probe)
	return false
}

// exported says whether a series name is one labhook exports: a
// registered metric, a histogram's _bucket, _sum or _count series, or a
// kube-state-metrics series from kube-state-metrics.yaml.
func exported(name string, ksm map[string]bool) bool {
	if ksm[name] || registered(name) {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && !strings.HasSuffix(base, "_total") && registered(base) {
			return true
		}
	}
	return false
}

// metricNames are the metric names an expression selects.
func metricNames(t *testing.T, expr string) []string {
	t.Helper()
	e, err := promql.ParseExpr(expr)
	if err != nil {
		t.Fatalf("%s: %v", expr, err)
	}
	var names []string
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		if vs, ok := n.(*parser.VectorSelector); ok {
			if vs.Name == "" {
				t.Errorf("%s: select metrics by name, not only by labels", expr)
			}
			names = append(names, vs.Name)
		}
		return nil
	})
	return names
}

func TestProbeTellsRegisteredNamesFromOthers(t *testing.T) {
	for name, want := range map[string]bool{
		"labhook_deliveries_total":                  true,
		"labhook_delivery_duration_seconds":         true,
		"labhook_incoming_requests_total":           true,
		"labhook_no_such_metric":                    false,
		"labhook_deliveries_total_bucket":           false,
		"labhook_delivery_duration_seconds_bucket":  false, // a series, not a collector
		"controller_runtime_reconcile_errors_total": true,
	} {
		if got := registered(name); got != want {
			t.Errorf("registered(%q) = %v, want %v", name, got, want)
		}
	}
	if !exported("labhook_delivery_duration_seconds_bucket", nil) || exported("labhook_deliveries_total_bucket", nil) {
		t.Error("exported: a histogram's _bucket series is exported, a counter's is not")
	}
}

// ksmConfig is the part of kube-state-metrics' custom-resource-state
// configuration the test reads.
type ksmConfig struct {
	Kind string `json:"kind"`
	Spec struct {
		Resources []struct {
			GroupVersionKind struct{ Group, Version, Kind string } `json:"groupVersionKind"`
			MetricNamePrefix string                                `json:"metricNamePrefix"`
			LabelsFromPath   map[string][]string                   `json:"labelsFromPath"`
			Metrics          []struct {
				Name string `json:"name"`
				Help string `json:"help"`
				Each struct {
					Type  string `json:"type"`
					Gauge *struct {
						Path           []string            `json:"path"`
						LabelsFromPath map[string][]string `json:"labelsFromPath"`
						ValueFrom      []string            `json:"valueFrom"`
					} `json:"gauge"`
					StateSet *struct {
						LabelName string   `json:"labelName"`
						Path      []string `json:"path"`
						List      []string `json:"list"`
					} `json:"stateSet"`
				} `json:"each"`
			} `json:"metrics"`
		} `json:"resources"`
	} `json:"spec"`
}

// ksmMetrics reads kube-state-metrics.yaml, checks every path it reads
// against labhook's CRDs, and returns the series names it produces.
func ksmMetrics(t *testing.T) map[string]bool {
	t.Helper()
	var cfg ksmConfig
	readYAML(t, filepath.Join(promDir, "kube-state-metrics.yaml"), &cfg)
	if cfg.Kind != "CustomResourceStateMetrics" || len(cfg.Spec.Resources) == 0 {
		t.Fatalf("kube-state-metrics.yaml: not a CustomResourceStateMetrics with resources")
	}
	names := map[string]bool{}
	for _, r := range cfg.Spec.Resources {
		gvk := r.GroupVersionKind
		schema := crdSchema(t, gvk.Group, gvk.Version, gvk.Kind)
		for label, path := range r.LabelsFromPath {
			checkPath(t, schema, path, "labelsFromPath "+label)
		}
		for _, m := range r.Metrics {
			if m.Help == "" {
				t.Errorf("kube-state-metrics.yaml: %s has no help", m.Name)
			}
			switch {
			case m.Each.Type == "Gauge" && m.Each.Gauge != nil:
				elem := checkPath(t, schema, m.Each.Gauge.Path, m.Name)
				if len(m.Each.Gauge.ValueFrom) > 0 || len(m.Each.Gauge.LabelsFromPath) > 0 {
					if elem == nil || elem.Items == nil || elem.Items.Schema == nil {
						t.Errorf("kube-state-metrics.yaml: %s: valueFrom and labelsFromPath need a list at %v", m.Name, m.Each.Gauge.Path)
						continue
					}
					checkPath(t, elem.Items.Schema, m.Each.Gauge.ValueFrom, m.Name+" valueFrom")
					for label, p := range m.Each.Gauge.LabelsFromPath {
						checkPath(t, elem.Items.Schema, p, m.Name+" label "+label)
					}
				}
			case m.Each.Type == "StateSet" && m.Each.StateSet != nil:
				elem := checkPath(t, schema, m.Each.StateSet.Path, m.Name)
				if elem != nil && !slices.Equal(enumOf(elem), m.Each.StateSet.List) {
					t.Errorf("kube-state-metrics.yaml: %s lists %v, the CRD's enum is %v", m.Name, m.Each.StateSet.List, enumOf(elem))
				}
			default:
				t.Errorf("kube-state-metrics.yaml: %s: unchecked type %q", m.Name, m.Each.Type)
			}
			names[r.MetricNamePrefix+"_"+m.Name] = true
		}
	}
	return names
}

// crdSchema finds the schema of group/version kind in config/crd/bases.
func crdSchema(t *testing.T, group, version, kind string) *apiextensionsv1.JSONSchemaProps {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(root, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no CRDs in config/crd/bases: %v", err)
	}
	for _, f := range files {
		var crd apiextensionsv1.CustomResourceDefinition
		readYAML(t, f, &crd)
		if crd.Spec.Group != group || crd.Spec.Names.Kind != kind {
			continue
		}
		for _, v := range crd.Spec.Versions {
			if v.Name == version && v.Schema != nil {
				return v.Schema.OpenAPIV3Schema
			}
		}
	}
	t.Fatalf("no CRD for %s/%s %s in config/crd/bases", group, version, kind)
	return nil
}

// checkPath follows path through schema's properties and returns the
// schema it ends at, or reports that the field does not exist.
func checkPath(t *testing.T, schema *apiextensionsv1.JSONSchemaProps, path []string, what string) *apiextensionsv1.JSONSchemaProps {
	t.Helper()
	if len(path) == 2 && path[0] == "metadata" && slices.Contains([]string{"name", "namespace", "uid"}, path[1]) {
		// ObjectMeta is not spelled out in a CRD's schema.
		return &apiextensionsv1.JSONSchemaProps{Type: "string"}
	}
	s := schema
	for i, p := range path {
		next, ok := s.Properties[p]
		if !ok {
			t.Errorf("kube-state-metrics.yaml: %s: no field %s in the CRD", what, strings.Join(path[:i+1], "."))
			return nil
		}
		s = &next
	}
	return s
}

func enumOf(s *apiextensionsv1.JSONSchemaProps) []string {
	var out []string
	for _, e := range s.Enum {
		var v string
		if json.Unmarshal(e.Raw, &v) == nil {
			out = append(out, v)
		}
	}
	return out
}

func readYAML(t *testing.T, file string, v any) {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", file, err)
	}
}

// runbookAnchors are the GitHub anchors of docs/operations.md's headings.
func runbookAnchors(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "docs", "operations.md"))
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	punct := regexp.MustCompile(`[^a-z0-9 _-]`)
	for _, l := range strings.Split(string(b), "\n") {
		if h, ok := strings.CutPrefix(l, "#"); ok {
			h = strings.TrimSpace(strings.TrimLeft(h, "#"))
			anchors[strings.ReplaceAll(punct.ReplaceAllString(strings.ToLower(h), ""), " ", "-")] = true
		}
	}
	return anchors
}

func TestRulesLoadAndNameOnlyExportedMetrics(t *testing.T) {
	ksm := ksmMetrics(t)
	var rule struct {
		Kind string          `json:"kind"`
		Spec json.RawMessage `json:"spec"`
	}
	readYAML(t, filepath.Join(promDir, "prometheusrule.yaml"), &rule)
	if rule.Kind != "PrometheusRule" {
		t.Fatalf("prometheusrule.yaml: kind %q", rule.Kind)
	}
	// spec of a PrometheusRule is a Prometheus rules file.
	rulesFile, err := yaml.JSONToYAML(rule.Spec)
	if err != nil {
		t.Fatal(err)
	}
	groups, errs := rulefmt.Parse(rulesFile, false, model.UTF8Validation, promql, slog.New(slog.NewTextHandler(io.Discard, nil)))
	for _, err := range errs {
		t.Errorf("prometheusrule.yaml: %v", err)
	}
	if groups == nil {
		t.FailNow()
	}
	anchors := runbookAnchors(t)
	alerts := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			name := r.Alert + r.Record
			for _, m := range metricNames(t, r.Expr) {
				if !exported(m, ksm) {
					t.Errorf("rule %s names %s, which labhook does not export", name, m)
				}
			}
			if r.Alert == "" {
				continue
			}
			alerts++
			if r.For == 0 {
				t.Errorf("alert %s fires on one evaluation: give it a for", name)
			}
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("alert %s: severity %q, want warning or critical", name, s)
			}
			for _, a := range []string{"summary", "description"} {
				if r.Annotations[a] == "" {
					t.Errorf("alert %s has no %s", name, a)
				}
			}
			anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], runbookURL)
			if !ok || anchor != strings.ToLower(name) {
				t.Errorf("alert %s: runbook_url %q, want %s%s", name, r.Annotations["runbook_url"], runbookURL, strings.ToLower(name))
			} else if !anchors[anchor] {
				t.Errorf("alert %s: docs/operations.md has no section %q", name, "### "+name)
			}
		}
	}
	if alerts < 7 {
		t.Errorf("found %d alerts, want the 7 of issue 14 at least", alerts)
	}
}

// grafanaVariables are replaced by what Grafana would put there, so the
// panel's PromQL parses.
var grafanaVariables = strings.NewReplacer("$__rate_interval", "5m", "$organisation", ".*")

func TestDashboardNamesOnlyExportedMetrics(t *testing.T) {
	ksm := ksmMetrics(t)
	b, err := os.ReadFile(filepath.Join(promDir, "grafana", "labhook.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID        string `json:"uid"`
		Templating struct {
			List []struct {
				Name       string `json:"name"`
				Definition string `json:"definition"`
			} `json:"list"`
		} `json:"templating"`
		Panels []struct {
			Title   string `json:"title"`
			Type    string `json:"type"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana/labhook.json: %v", err)
	}
	exprs := 0
	for _, p := range dash.Panels {
		if p.Type != "row" && len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			exprs++
			for _, m := range metricNames(t, grafanaVariables.Replace(tg.Expr)) {
				if !exported(m, ksm) {
					t.Errorf("panel %q names %s, which labhook does not export", p.Title, m)
				}
			}
		}
	}
	for _, v := range dash.Templating.List {
		if m, ok := strings.CutPrefix(v.Definition, "label_values("); ok {
			name, _, _ := strings.Cut(m, ",")
			if !exported(strings.TrimSpace(name), ksm) {
				t.Errorf("variable %s reads %s, which labhook does not export", v.Name, name)
			}
		}
	}
	if exprs == 0 {
		t.Error("no queries in the dashboard")
	}
	// The panels the issue asks for, by what they show.
	for _, want := range []string{"labhook_deliveries_total", "labhook_delivery_duration_seconds_bucket",
		"kube_labhook_webhookconfig_pending", "labhook_incoming_requests_total"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the dashboard shows nothing from %s", want)
		}
	}
	t.Logf("%d queries checked", exprs)
}
