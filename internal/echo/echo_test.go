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

package echo_test

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	labhookv1alpha1 "github.com/labhook/labhook/api/v1alpha1"
	"github.com/labhook/labhook/internal/echo"
)

func TestIsEchoDeleteOnlyForTheDeletionThatFollowsTheMark(t *testing.T) {
	marked := time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)
	for _, c := range []struct {
		name    string
		mark    map[string]string
		deleted *time.Time
		want    bool
	}{
		{"deleted right after the mark", echo.DeleteMark("m", marked), ptr(marked.Add(time.Second)), true},
		{"deleted a moment before the mark, by a skewed clock", echo.DeleteMark("m", marked), ptr(marked.Add(-5 * time.Second)), true},
		{"deleted an hour after a mark a failed delete left", echo.DeleteMark("m", marked), ptr(marked.Add(time.Hour)), false},
		{"marked, not being deleted", echo.DeleteMark("m", marked), nil, false},
		{"a mark without its time (by hand, or older webhookservers)", map[string]string{labhookv1alpha1.AnnotationSourceDeleted: "m"}, ptr(marked), true},
		{"a mark with a time that is not one", map[string]string{labhookv1alpha1.AnnotationSourceDeleted: "m", labhookv1alpha1.AnnotationSourceDeletedAt: "soon"}, ptr(marked), false},
		{"no mark", nil, ptr(marked), false},
	} {
		t.Run(c.name, func(t *testing.T) {
			obj := &metav1.ObjectMeta{Annotations: c.mark}
			if c.deleted != nil {
				obj.DeletionTimestamp = &metav1.Time{Time: *c.deleted}
			}
			if got := echo.IsEchoDelete(obj); got != c.want {
				t.Errorf("IsEchoDelete = %v, want %v", got, c.want)
			}
		})
	}
}

func ptr(t time.Time) *time.Time { return &t }
