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

package devenv

import (
	"fmt"
	"path/filepath"
	"strings"
)

// printInstructions tells the person what is running and what to try.
func printInstructions(o Options, kubeconfig, receiverURL, incomingURL string, demo *demoOrg) {
	kc := kubeconfig
	if rel, err := filepath.Rel(o.Dir, kubeconfig); err == nil && !strings.HasPrefix(rel, "..") {
		kc = rel
	}
	logs := filepath.Join(o.BinDir, "*.log")
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format+"\n", a...) }
	p("")
	p("labhook dev environment")
	p("  kubeconfig     %s", kc)
	p("  receiver       %s   (verifies signatures, logs each message)", receiverURL)
	p("  webhookserver  %s", incomingURL)
	p("  logs           %s", logs)
	p("")
	p("Try:")
	p("  kubectl --kubeconfig %s get labhook -A", kc)
	if demo != nil {
		p("  kubectl --kubeconfig %s -n %s get whc %s -o yaml", kc, DemoNamespace, DemoWebhookConfig)
		p("  kubectl --kubeconfig %s -n %s apply -f config/samples", kc, DemoNamespace)
		p("  kubectl --kubeconfig %s -n %s get lr,li,om", kc, DemoNamespace)
		p("")
		p("  # post seed 000's example as the demo organisation's backend (the API key is shown only")
		p("  # here, and the port is the one this run picked: this is the README's curl, filled in):")
		p("  curl -sS -X POST \\")
		p("    -H 'Authorization: Bearer %s:%s' \\", DemoNamespace, demo.apiKey)
		p("    -H 'Accept: application/json' -H 'Content-Type: application/json' \\")
		p("    %s \\", incomingURL)
		p("    -d @config/samples/incoming/seed-example.json")
		p("")
		p("  # what the receiver got (also shown here as it arrives):")
		p("  tail -f %s", filepath.Join(o.BinDir, "receiver.log"))
	} else {
		p("  # no demo organisation (--no-demo); the receiver's signing secret is in %s",
			filepath.Join(o.BinDir, "receiver-signing-secret"))
	}
	printPluginInstructions(p, kc, incomingURL, demo)
	p("")
	p("Ctrl-C stops everything.")
	fmt.Fprint(o.Out, b.String())
}

// printPluginInstructions shows the kubectl plugin on the dev environment.
func printPluginInstructions(p func(string, ...any), kc, incomingURL string, demo *demoOrg) {
	p("")
	p("  # kubectl labhook, the kubectl plugin (make build puts it in bin/; or run bin/kubectl-labhook):")
	p("  export PATH=$PWD/bin:$PATH")
	p("  kubectl labhook --kubeconfig %s status -A", kc)
	if demo == nil {
		return
	}
	p("  kubectl labhook --kubeconfig %s -n %s test whc/%s --wait", kc, DemoNamespace, DemoWebhookConfig)
	p("  LABHOOK_API_KEY=%s kubectl labhook --kubeconfig %s send --org %s \\", demo.apiKey, kc, DemoNamespace)
	p("    -f config/samples/incoming/seed-example.json --url %s", incomingURL)
}
