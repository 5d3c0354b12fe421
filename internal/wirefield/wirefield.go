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

// Package wirefield turns the problems api/wire reports (wire.FieldErrors:
// api/wire is a module of its own without Kubernetes imports) into
// apimachinery's field.ErrorList, field for field.
package wirefield

import (
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/labhook/labhook/api/wire"
)

// ErrorList is errs as a field.ErrorList: the same types, paths, values
// and details, so the same messages.
func ErrorList(errs wire.FieldErrors) field.ErrorList {
	if errs == nil {
		return nil
	}
	out := make(field.ErrorList, 0, len(errs))
	for _, e := range errs {
		out = append(out, &field.Error{Type: field.ErrorType(e.Type), Field: e.Field, BadValue: e.BadValue, Detail: e.Detail})
	}
	return out
}
