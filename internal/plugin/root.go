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

// Package plugin is the kubectl plugin `kubectl labhook`: the commands a
// cluster admin uses to operate labhook (status, test, redeliver, rotate,
// keys, send, verify), on client-go and cli-runtime so that --kubeconfig,
// --context, -n and -A behave as they do in kubectl.
package plugin

import (
	"fmt"
	"net/http"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/cli-runtime/pkg/genericiooptions"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
)

// Options are what the commands need from outside: where they print, and
// the clock and HTTP client tests replace.
type Options struct {
	genericiooptions.IOStreams
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// HTTPClient sends `send`'s request; nil means a client that follows no
	// redirects and gives up after --timeout.
	HTTPClient *http.Client
	// Getenv reads the environment (LABHOOK_API_KEY, LABHOOK_URL); nil
	// means os.Getenv.
	Getenv func(string) string
}

// cli holds what every command shares: the kubectl flags and the client
// made from them on first use.
type cli struct {
	Options
	flags  *genericclioptions.ConfigFlags
	client client.WithWatch
}

// NewCommand returns the root command, `kubectl labhook`.
func NewCommand(o Options) *cobra.Command {
	c := &cli{Options: o, flags: genericclioptions.NewConfigFlags(true)}
	if c.Now == nil {
		c.Now = time.Now
	}
	root := &cobra.Command{
		Use:   "kubectl-labhook",
		Short: "Operate labhook: organisations' delivery status, tests, redeliveries, rotations, API keys",
		Long: `kubectl labhook operates labhook from kubectl.

A namespace is an organisation: -n picks one, -A (where offered) looks at all.
--kubeconfig, --context and the other kubectl flags work as in kubectl.`,
		Annotations:   map[string]string{cobra.CommandDisplayNameAnnotation: "kubectl labhook"},
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(o.In)
	root.SetOut(o.Out)
	root.SetErr(o.ErrOut)
	c.flags.AddFlags(root.PersistentFlags())
	_ = root.RegisterFlagCompletionFunc("namespace", c.completeNamespaces)
	root.AddCommand(
		c.statusCommand(),
		c.testCommand(),
		c.redeliverCommand(),
		c.rotateCommand(),
		c.keysCommand(),
		c.sendCommand(),
		c.verifyCommand(),
	)
	return root
}

// kube returns the client, made from the kubectl flags on first use.
func (c *cli) kube() (client.WithWatch, error) {
	if c.client != nil {
		return c.client, nil
	}
	cfg, err := c.flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("kubeconfig: %w", err)
	}
	scheme := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		return nil, err
	}
	if err := labhookv1alpha1.AddToScheme(scheme); err != nil {
		return nil, err
	}
	cl, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		return nil, fmt.Errorf("connect to the cluster: %w", err)
	}
	c.client = cl
	return cl, nil
}

// namespace is the organisation -n names, or the kubeconfig context's.
func (c *cli) namespace() (string, error) {
	ns, _, err := c.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("namespace: %w", err)
	}
	return ns, nil
}

// org is --org when given, else the -n namespace.
func (c *cli) org(flag string) (string, error) {
	if flag != "" {
		return flag, nil
	}
	return c.namespace()
}
