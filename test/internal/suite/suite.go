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

// Package suite is what the suites of real processes (test/hostile,
// test/reliability) share: labhook's binaries built once into a temporary
// directory, a control plane with labhook's CRDs, and fresh namespaces.
package suite

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/labhook/labhook/test/internal/cluster"
	"github.com/labhook/labhook/test/internal/process"
)

// Env is one suite's binaries, directory and control plane.
type Env struct {
	// Root is the repository's root.
	Root string
	// Tmp holds the binaries, the processes' logs and kubeconfigs.
	Tmp string
	// Cluster is the control plane.
	Cluster *cluster.Cluster

	binaries map[string]string
	ns       atomic.Int64
}

// Start builds the named commands of cmd/ into a new temporary directory
// whose name begins with prefix, and starts a control plane.
func Start(ctx context.Context, prefix string, binaries ...string) (*Env, error) {
	root, err := cluster.RepoRoot()
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", prefix)
	if err != nil {
		return nil, err
	}
	e := &Env{Root: root, Tmp: tmp, binaries: map[string]string{}}
	for _, name := range binaries {
		p, err := process.Build(ctx, root, tmp, name)
		if err != nil {
			return e, err
		}
		e.binaries[name] = p
	}
	if e.Cluster, err = cluster.Start(tmp); err != nil {
		return e, err
	}
	return e, nil
}

// Stop stops the control plane and removes the directory, unless keep (a
// failed suite keeps its logs).
func (e *Env) Stop(keep bool) error {
	var err error
	if e.Cluster != nil {
		err = e.Cluster.Stop()
	}
	if !keep {
		_ = os.RemoveAll(e.Tmp)
	}
	return err
}

// Binary is the path of a command Start built.
func (e *Env) Binary(name string) string { return e.binaries[name] }

// Namespace creates a namespace of its own for one spec: prefix-N.
func (e *Env) Namespace(ctx context.Context, prefix string) (string, error) {
	ns := fmt.Sprintf("%s-%d", prefix, e.ns.Add(1))
	return ns, e.Cluster.Namespace(ctx, ns)
}

// LogPath is where the process called name writes its log.
func (e *Env) LogPath(name string) string { return filepath.Join(e.Tmp, name+".log") }
