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

package webhookserver

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestKeyLocksNeverMakeUnrelatedKeysWait(t *testing.T) {
	l := newKeyLocks()
	ctx := context.Background()
	// Far more keys held at once than the 256 shared locks there used to
	// be: none waits for another.
	for i := range 1000 {
		if err := l.lock(withTimeout(t, time.Second), fmt.Sprintf("org-%d/msg", i)); err != nil {
			t.Fatalf("key %d waited for another key: %v", i, err)
		}
	}
	if err := l.lock(withTimeout(t, 50*time.Millisecond), "org-7/msg"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a held key was taken again: %v", err)
	}
	got := make(chan error, 1)
	go func() { got <- l.lock(withTimeout(t, 5*time.Second), "org-7/msg") }()
	l.unlock("org-7/msg")
	if err := <-got; err != nil {
		t.Fatalf("a released key was not handed over: %v", err)
	}
	for i := range 1000 {
		l.unlock(fmt.Sprintf("org-%d/msg", i))
	}
	if err := l.lock(ctx, "org-1/msg"); err != nil {
		t.Fatal(err)
	}
	l.unlock("org-1/msg")
	if n := len(l.locks); n != 0 {
		t.Fatalf("%d locks kept after every key was released", n)
	}
}

func TestAdmitCallsKeepsAnOrganisationsMessagesWithinItsBudget(t *testing.T) {
	o := DefaultOptions()
	o.OrgAPIQPS, o.RequestTimeout = 10, 10*time.Second // 100 calls per message deadline
	l := newLimits(o)
	a, b := l.org("a"), l.org("b")
	doneBig, _, refused := l.admitCalls("a", a, 500)
	if refused != nil {
		t.Fatal("a lone message is admitted whatever its size (it fails on its own deadline if it must)")
	}
	if _, wait, refused := l.admitCalls("a", a, 3); refused == nil || wait <= 0 {
		t.Fatalf("a second message of an organisation over its budget must wait: %v %v", refused, wait)
	}
	if done, _, refused := l.admitCalls("b", b, 60); refused != nil {
		t.Fatal("another organisation's budget is its own")
	} else {
		done()
	}
	doneBig()
	if done, _, refused := l.admitCalls("a", a, 60); refused != nil {
		t.Fatal("the budget frees when the message ends")
	} else {
		done()
	}
}

func withTimeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
