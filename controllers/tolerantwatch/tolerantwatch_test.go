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

package tolerantwatch_test

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/controllers/tolerantwatch"
)

// lr renders a stored LabResource; restart is its restartRequestedAt.
func lr(name, restart string) string {
	return `{"apiVersion":"labhook.io/v1alpha1","kind":"LabResource","metadata":{"name":"` + name +
		`","namespace":"org","uid":"uid-` + name + `","resourceVersion":"1"},"spec":{"id":"` + name +
		`","type":"VM","restartRequestedAt":"` + restart + `"}}`
}

const (
	good = "2026-11-25T06:00:00Z"
	// Admitted by CRD versions without the pattern; metav1.Time refuses it.
	bad = "2026-11-25t06:00:00z"
)

// server answers the list and watch requests of an informer, as the API
// server does, with one undecodable object among good ones.
func server(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Query().Get("watch") == "true" {
			for _, ev := range []string{
				`{"type":"ADDED","object":` + lr("a", good) + `}`,
				`{"type":"ADDED","object":` + lr("evil", bad) + `}`,
				`{"type":"MODIFIED","object":` + lr("b", bad) + `}`,
				`{"type":"BOOKMARK","object":{"apiVersion":"labhook.io/v1alpha1","kind":"LabResource","metadata":{"resourceVersion":"9"}}}`,
				`{"type":"MODIFIED","object":` + lr("c", good) + `}`,
			} {
				_, _ = io.WriteString(w, ev+"\n")
				w.(http.Flusher).Flush()
			}
			return
		}
		_, _ = io.WriteString(w, `{"apiVersion":"labhook.io/v1alpha1","kind":"LabResourceList","metadata":{"resourceVersion":"5"},"items":[`+
			lr("a", good)+","+lr("evil", bad)+","+lr("c", good)+`]}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func filteredClient() *http.Client {
	scheme := runtime.NewScheme()
	utilruntime.Must(labhookv1alpha1.AddToScheme(scheme))
	return &http.Client{Transport: tolerantwatch.New(scheme, labhookv1alpha1.GroupVersion.Group).Transport(http.DefaultTransport)}
}

func TestListDropsOnlyTheUndecodableObject(t *testing.T) {
	srv := server(t)
	resp, err := filteredClient().Get(srv.URL + "/apis/labhook.io/v1alpha1/labresources")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var list labhookv1alpha1.LabResourceList
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		t.Fatalf("the filtered list does not decode: %v", err)
	}
	var names []string
	for _, i := range list.Items {
		names = append(names, i.Name)
	}
	if strings.Join(names, ",") != "a,c" || list.ResourceVersion != "5" {
		t.Errorf("items %v at resourceVersion %q, want a,c at 5", names, list.ResourceVersion)
	}
}

func TestWatchSkipsAnUndecodableAddAndTurnsAnUndecodableChangeIntoADeletion(t *testing.T) {
	srv := server(t)
	resp, err := filteredClient().Get(srv.URL + "/apis/labhook.io/v1alpha1/namespaces/org/labresources?watch=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		var ev struct {
			Type   string                      `json:"type"`
			Object labhookv1alpha1.LabResource `json:"object"`
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("event %s does not decode: %v", sc.Text(), err)
		}
		got = append(got, ev.Type+" "+ev.Object.Name)
	}
	want := "ADDED a,DELETED b,BOOKMARK ,MODIFIED c"
	if strings.Join(got, ",") != want {
		t.Errorf("events %v, want %s", got, want)
	}
}

func TestLeavesOtherGroupsAndMetadataRequestsAlone(t *testing.T) {
	srv := server(t)
	c := filteredClient()
	for _, tc := range []struct{ path, accept string }{
		{"/apis/other.io/v1/labresources", "application/json"},
		{"/apis/labhook.io/v1alpha1/labresources", "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1"},
	} {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+tc.path, nil)
		req.Header.Set("Accept", tc.accept)
		resp, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `"evil"`) {
			t.Errorf("%s (%s) was filtered", tc.path, tc.accept)
		}
	}
}
