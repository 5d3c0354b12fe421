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

// Command gen-chart generates the Helm chart charts/labhook from config/, so
// the chart and the kustomize tree cannot drift: it renders
// config/default, config/overlays/standalone-webhookserver,
// config/overlays/sharded (a shard's manager Deployment, rendered once per
// manager.shards name) and config/prometheus with kustomize and turns the
// objects into templates,
// putting values where an installation chooses (image, replicas,
// resources, flags, the webhookserver's TLS Secret, scheduling). Objects
// that differ between the two layouts are chosen by
// webhookserver.standalone. Like kubebuilder's helm plugin, but driven by
// our kustomize output rather than by scaffolding.
//
//	go run ./hack/gen-chart --kustomize bin/kustomize-v5.8.2           # write charts/labhook
//	go run ./hack/gen-chart --kustomize bin/kustomize-v5.8.2 --check   # exit 1 if it is not up to date
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

func main() {
	var o options
	flag.StringVar(&o.kustomize, "kustomize", "kustomize", "the kustomize binary")
	flag.StringVar(&o.root, "root", ".", "the repository root")
	flag.StringVar(&o.out, "out", filepath.Join("charts", "labhook"), "the chart directory, relative to --root")
	flag.StringVar(&o.version, "chart-version", defaultChartVersion, "the chart's version")
	flag.BoolVar(&o.check, "check", false, "compare the chart with what would be generated, write nothing; exit 1 on a difference")
	flag.Parse()
	files, err := generate(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gen-chart:", err)
		os.Exit(1)
	}
	dir := filepath.Join(o.root, o.out)
	if o.check {
		if diffs := compare(dir, files); len(diffs) > 0 {
			fmt.Fprintf(os.Stderr, "gen-chart: %s is not what config/ generates; run make helm:\n  %s\n", o.out, strings.Join(diffs, "\n  "))
			os.Exit(1)
		}
		fmt.Printf("gen-chart: %s is up to date (%d files)\n", o.out, len(files))
		return
	}
	if err := write(dir, files); err != nil {
		fmt.Fprintln(os.Stderr, "gen-chart:", err)
		os.Exit(1)
	}
	fmt.Printf("gen-chart: wrote %s (%d files)\n", o.out, len(files))
}

type options struct {
	kustomize, root, out, version string
	check                         bool
}

// write replaces dir's content with files: a file config/ no longer
// produces goes away.
func write(dir string, files map[string][]byte) error {
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	for name, b := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

// compare lists the files of dir that differ from files, are missing, or
// are extra.
func compare(dir string, files map[string][]byte) []string {
	var diffs []string
	seen := map[string]bool{}
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		name, _ := filepath.Rel(dir, p)
		seen[name] = true
		want, ok := files[name]
		if !ok {
			diffs = append(diffs, "extra: "+name)
			return nil
		}
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
			diffs = append(diffs, "differs: "+name)
		}
		return nil
	})
	for name := range files {
		if !seen[name] {
			diffs = append(diffs, "missing: "+name)
		}
	}
	slices.Sort(diffs)
	return diffs
}
