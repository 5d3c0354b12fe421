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

package wire

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// The problems of an incoming message, and the few checks of names they
// need. This package is the contract receivers and senders vendor, so it
// depends on the standard library (and the Standard Webhooks library)
// only: these are small equivalents of k8s.io/apimachinery's
// validation/field, with the same error types, field paths and wording, so
// that a Kubernetes program can turn a FieldError into a field.Error
// field for field (labhook's webhookserver does; a test in labhook's own
// module compares the two on a table of inputs).

// ErrorType is the kind of a problem. Its values are those of
// k8s.io/apimachinery's field.ErrorType.
type ErrorType string

// The kinds of problem ParseIncoming reports.
const (
	ErrorTypeRequired     ErrorType = "FieldValueRequired"
	ErrorTypeDuplicate    ErrorType = "FieldValueDuplicate"
	ErrorTypeInvalid      ErrorType = "FieldValueInvalid"
	ErrorTypeNotSupported ErrorType = "FieldValueNotSupported"
	ErrorTypeForbidden    ErrorType = "FieldValueForbidden"
	ErrorTypeTooLong      ErrorType = "FieldValueTooLong"
	ErrorTypeTooMany      ErrorType = "FieldValueTooMany"
)

// String is the human name of the kind of problem.
func (t ErrorType) String() string {
	switch t {
	case ErrorTypeRequired:
		return "Required value"
	case ErrorTypeDuplicate:
		return "Duplicate value"
	case ErrorTypeInvalid:
		return "Invalid value"
	case ErrorTypeNotSupported:
		return "Unsupported value"
	case ErrorTypeForbidden:
		return "Forbidden"
	case ErrorTypeTooLong:
		return "Too long"
	case ErrorTypeTooMany:
		return "Too many"
	}
	return fmt.Sprintf("<unknown error %q>", string(t))
}

// FieldError is one problem of a message, at its field path
// (data.resources[1].type).
type FieldError struct {
	Type     ErrorType
	Field    string
	BadValue any
	Detail   string
}

// FieldErrors are the problems of one message.
type FieldErrors []*FieldError

// Error is the field path and the problem.
func (e *FieldError) Error() string { return e.Field + ": " + e.ErrorBody() }

// ErrorBody is the problem without the field path.
func (e *FieldError) ErrorBody() string {
	var s string
	switch e.Type {
	case ErrorTypeRequired, ErrorTypeForbidden, ErrorTypeTooLong:
		s = e.Type.String()
	default:
		switch v := e.BadValue.(type) {
		case int64, int32, float64, float32, bool:
			s = fmt.Sprintf("%s: %v", e.Type, v)
		case string:
			s = fmt.Sprintf("%s: %q", e.Type, v)
		default:
			b, err := json.Marshal(v)
			if err != nil {
				b = fmt.Appendf(nil, "%#v", v)
			}
			s = fmt.Sprintf("%s: %s", e.Type, b)
		}
	}
	if e.Detail != "" {
		s += ": " + e.Detail
	}
	return s
}

// fieldPath is a field path as a problem names it: "" is the message
// itself, data.resources[1].type a field deep in it.
type fieldPath string

// Child is the field name of p.
func (p fieldPath) Child(name string) fieldPath {
	switch {
	case name == "":
		return p + "[]"
	case p == "":
		return fieldPath(name)
	}
	return p + "." + fieldPath(name)
}

// Index is the i-th item of the list p.
func (p fieldPath) Index(i int) fieldPath { return p + fieldPath("["+strconv.Itoa(i)+"]") }

func (p fieldPath) String() string { return string(p) }

func requiredError(p fieldPath, detail string) *FieldError {
	return &FieldError{Type: ErrorTypeRequired, Field: p.String(), BadValue: "", Detail: detail}
}

func duplicateError(p fieldPath, value any) *FieldError {
	return &FieldError{Type: ErrorTypeDuplicate, Field: p.String(), BadValue: value}
}

func invalidError(p fieldPath, value any, detail string) *FieldError {
	return &FieldError{Type: ErrorTypeInvalid, Field: p.String(), BadValue: value, Detail: detail}
}

func notSupportedError(p fieldPath, value any, values []string) *FieldError {
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = strconv.Quote(v)
	}
	detail := ""
	if len(values) > 0 {
		detail = "supported values: " + strings.Join(quoted, ", ")
	}
	return &FieldError{Type: ErrorTypeNotSupported, Field: p.String(), BadValue: value, Detail: detail}
}

func forbiddenError(p fieldPath, detail string) *FieldError {
	return &FieldError{Type: ErrorTypeForbidden, Field: p.String(), BadValue: "", Detail: detail}
}

// tooLongError reports a value over maxLength bytes; the value is not repeated.
func tooLongError(p fieldPath, maxLength int) *FieldError {
	unit := "bytes"
	if maxLength == 1 {
		unit = "byte"
	}
	return &FieldError{Type: ErrorTypeTooLong, Field: p.String(), BadValue: "<value omitted>",
		Detail: fmt.Sprintf("may not be more than %d %s", maxLength, unit)}
}

func tooManyError(p fieldPath, actual, maxItems int) *FieldError {
	unit := "items"
	if maxItems == 1 {
		unit = "item"
	}
	return &FieldError{Type: ErrorTypeTooMany, Field: p.String(), BadValue: actual,
		Detail: fmt.Sprintf("must have at most %d %s", maxItems, unit)}
}

// inclusiveRange is the detail of a number out of [lo, hi].
func inclusiveRange(lo, hi int) string {
	return fmt.Sprintf("must be between %d and %d, inclusive", lo, hi)
}

// maxNameLength is the longest DNS subdomain (RFC 1123), and the longest
// Secret key.
const maxNameLength = 253

const dnsLabel = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"

var dnsSubdomain = regexp.MustCompile("^" + dnsLabel + `(\.` + dnsLabel + ")*$")

// isDNSSubdomain tells whether s is a lowercase RFC 1123 subdomain
// (labs.example.com) of at most 253 characters.
func isDNSSubdomain(s string) bool { return len(s) <= maxNameLength && dnsSubdomain.MatchString(s) }

const secretKeyFormat = `[-._a-zA-Z0-9]+`

var secretKey = regexp.MustCompile("^" + secretKeyFormat + "$")

// secretKeyProblems says why k cannot be the key of a Secret's data (none
// when it can).
func secretKeyProblems(k string) []string {
	var msgs []string
	if len(k) > maxNameLength {
		msgs = append(msgs, fmt.Sprintf("must be no more than %d characters", maxNameLength))
	}
	if !secretKey.MatchString(k) {
		msgs = append(msgs, "a valid config key must consist of alphanumeric characters, '-', '_' or '.' "+
			"(e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '"+secretKeyFormat+"')")
	}
	switch {
	case k == ".":
		msgs = append(msgs, `must not be '.'`)
	case k == "..":
		msgs = append(msgs, `must not be '..'`)
	case strings.HasPrefix(k, ".."):
		msgs = append(msgs, `must not start with '..'`)
	}
	return msgs
}
