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

// Package testenv starts what every envtest suite of labhook runs against:
// the real kube-apiserver and etcd that hack/setup-envtest.sh provides
// (through KUBEBUILDER_ASSETS), with labhook's CRDs installed.
package testenv

import (
	"errors"
	"os"
	"path/filepath"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// Start adds client-go's, apiextensions' and labhook's types to scheme,
// starts the control plane with the CRDs of repoRoot/config/crd/bases, and
// returns it with a client whose rate limits are high enough that tests
// are not throttled. The caller stops the environment.
func Start(repoRoot string, scheme *runtime.Scheme) (*envtest.Environment, *rest.Config, client.Client, error) {
	for _, add := range []func(*runtime.Scheme) error{
		clientgoscheme.AddToScheme, apiextensionsv1.AddToScheme, labhookv1alpha1.AddToScheme,
	} {
		if err := add(scheme); err != nil {
			return nil, nil, nil, err
		}
	}
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		return nil, nil, nil, errors.New("KUBEBUILDER_ASSETS is unset: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/setup-envtest.sh)")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(repoRoot, "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		return nil, nil, nil, err
	}
	cfg.QPS, cfg.Burst = 1000, 2000
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		_ = env.Stop()
		return nil, nil, nil, err
	}
	return env, cfg, c, nil
}
