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

package outbound

import (
	"errors"
	"net/netip"
	"testing"
)

func TestGuardRefusesEveryNonPublicRangeUnlessAllowed(t *testing.T) {
	cases := []struct {
		addr    string
		refused bool
	}{
		{"8.8.8.8:443", false},
		{"[2001:4860:4860::8888]:443", false},
		{"127.0.0.1:80", true},
		{"127.255.0.9:80", true},
		{"[::1]:80", true},
		{"[::ffff:127.0.0.1]:80", true},
		{"[::ffff:10.0.0.1]:80", true},
		{"[::ffff:169.254.169.254]:80", true},
		{"10.0.0.1:80", true},
		{"172.16.5.4:80", true},
		{"192.168.1.1:80", true},
		{"169.254.169.254:80", true},
		{"[fe80::1]:80", true},
		{"100.64.0.1:80", true},
		{"100.127.255.254:80", true},
		{"[fc00::1]:80", true},
		{"[fd12:3456::1]:80", true},
		{"0.0.0.0:80", true},
		{"[::]:80", true},
		{"224.0.0.251:5353", true},
		{"[ff02::1]:80", true},
		{"255.255.255.255:80", true},
		{"[64:ff9b::a00:1]:80", true}, // NAT64 form of 10.0.0.1
		{"[2002:a00:1::]:80", true},   // 6to4 form of 10.0.0.1
		{"198.18.0.1:80", true},
	}
	g := guard{}
	for _, tc := range cases {
		err := g.control("tcp", tc.addr, nil)
		var pe *PolicyError
		if tc.refused != errors.As(err, &pe) {
			t.Errorf("control(%s) = %v, refused want %v", tc.addr, err, tc.refused)
		}
	}

	allowed := guard{allowed: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("127.0.0.1/32")}}
	for addr, refused := range map[string]bool{
		"10.1.2.3:80":           false,
		"[::ffff:10.1.2.3]:80":  false, // the mapped form of an allowed address is allowed too
		"127.0.0.1:80":          false,
		"127.0.0.2:80":          true,
		"192.168.0.1:80":        true,
		"169.254.169.254:80":    true,
		"[64:ff9b::a00:1]:80":   true,
		"garbage":               true,
		"not-an-ip.example:443": true,
	} {
		err := allowed.control("tcp", addr, nil)
		if refused != (err != nil) {
			t.Errorf("allowed.control(%s) = %v, refused want %v", addr, err, refused)
		}
	}
}
