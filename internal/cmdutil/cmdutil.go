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

// Package cmdutil is the setup labhook's manager and webhookserver share:
// the flags every binary takes (logging, the API client's rate), the
// logger, the scheme and the API server's client config. The mains keep
// only their own flags and wiring.
package cmdutil

import (
	"flag"
	"fmt"

	"github.com/go-logr/logr"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// Defaults of the API client's rate.
const (
	DefaultQPS   = 500
	DefaultBurst = 1000
)

// Flags are the flags every labhook binary that talks to the API server
// takes.
type Flags struct {
	// QPS and Burst bound the client's requests to the API server
	// (--kube-api-qps, --kube-api-burst).
	QPS   float64
	Burst int
	// Zap is the logger's options (--zap-devel, --zap-log-level, ...).
	Zap zap.Options
}

// Bind registers --kube-api-qps, --kube-api-burst and controller-runtime's
// --zap-* flags on fs.
func (f *Flags) Bind(fs *flag.FlagSet) {
	fs.Float64Var(&f.QPS, "kube-api-qps", DefaultQPS, "Client-side QPS towards the API server.")
	fs.IntVar(&f.Burst, "kube-api-burst", DefaultBurst, "Client-side burst towards the API server.")
	f.Zap.BindFlags(fs)
}

// SetupLogger sets controller-runtime's logger from the --zap-* flags (call
// it after parsing them) and returns the logger of the setup.
func (f *Flags) SetupLogger() logr.Logger {
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&f.Zap)))
	return ctrl.Log.WithName("setup")
}

// RESTConfig is the API server's client config (in-cluster, or
// --kubeconfig / KUBECONFIG) with the flags' rate and the user agent
// labhook-COMPONENT/VERSION.
func (f *Flags) RESTConfig(component, version string) (*rest.Config, error) {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst = float32(f.QPS), f.Burst
	cfg.UserAgent = fmt.Sprintf("labhook-%s/%s", component, version)
	return cfg, nil
}

// Scheme holds client-go's types and labhook's.
func Scheme() *runtime.Scheme {
	s := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(s))
	utilruntime.Must(labhookv1alpha1.AddToScheme(s))
	return s
}
