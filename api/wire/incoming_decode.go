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
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/go-json-experiment/json/jsontext"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// The decoder walks a message's known structure token by token and keeps
// only what the message's shape allows, so memory follows the limits, not
// the body: a list keeps at most its limit of items (the rest are counted
// and skipped), a string over MaxStringLength is kept as its length, an
// unknown field is reported and skipped, and a config object keeps at most
// MaxConfigExtraBytes of keys labhook does not know, nested at most
// MaxDepth deep. What is over a limit becomes a marker that the validation
// reports with its field path. Values are skipped by scanning them as they
// stream in (jsontext's SkipValue), never built.

// tooLong stands for a string over MaxStringLength: only its length is kept.
type tooLong int

// tooMany stands for a list over its limit: only its length is kept.
type tooMany int

// skipped stands for an object or a list where a plain value belongs: its
// content is not kept, only what it was ("an object", "a list").
type skipped string

// shape is what the message allows at one place.
type shape struct {
	// fields are the known keys of an object. With open set, other keys
	// are kept as config extra; otherwise they are refused.
	fields map[string]*shape
	known  []string
	open   bool
	// items is the shape of a list's items, at most maxItems of them.
	items    *shape
	maxItems int
	// stringMap is an object of any keys (at most maxItems) with plain
	// values: credentials.
	stringMap bool
}

// leaf is a plain value: a string, a number, a boolean or null.
var leaf = &shape{}

func objectShape(open bool, fields ...any) *shape {
	s := &shape{fields: map[string]*shape{}, open: open}
	for i := 0; i < len(fields); i += 2 {
		k := fields[i].(string)
		s.fields[k] = fields[i+1].(*shape)
		s.known = append(s.known, k)
	}
	return s
}

func listShape(items *shape, maxItems int) *shape { return &shape{items: items, maxItems: maxItems} }

var messageShape = func() *shape {
	nic := objectShape(false, "public_ip", leaf, "private_ip", leaf, "dns", leaf)
	// network_interface is one object (the seed) or, leniently, a list.
	oneNIC := &shape{fields: nic.fields, known: nic.known, items: nic, maxItems: MaxNetworkInterfaces}
	resourceConfig := objectShape(true, "network_interface", oneNIC, "network_interfaces", listShape(nic, MaxNetworkInterfaces), "address", leaf)
	resource := objectShape(false, "id", leaf, "type", leaf, "status", leaf, "name", leaf, "config", resourceConfig)
	auth := objectShape(false, "type", leaf, "data", &shape{stringMap: true, maxItems: MaxCredentialKeys})
	interfaceConfig := objectShape(true, "port", leaf, "authentication", auth)
	iface := objectShape(false, "name", leaf, "type", leaf, "region", leaf, "resource_id", leaf, "config", interfaceConfig)
	data := objectShape(false, "resources", listShape(resource, MaxResources), "interfaces", listShape(iface, MaxInterfaces))
	return objectShape(false, "source_message_id", leaf, "type", leaf, "action", leaf, "timestamp", leaf, "data", data)
}()

// errStop ends decoding once more than MaxProblems problems are reported.
var errStop = errors.New("too many problems")

// reader builds the bounded tree of one message.
type reader struct {
	dec      *jsontext.Decoder
	body     *bodyReader
	w        *walker
	extraMax int
}

// bodyReader remembers an error reading the body itself (a body over its
// size limit, a client gone), to tell it from an error in the JSON.
type bodyReader struct {
	r   io.Reader
	err error
}

func (b *bodyReader) Read(p []byte) (int, error) {
	n, err := b.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		b.err = err
	}
	return n, err
}

// fail wraps an error of the JSON itself in ErrMalformed; an error reading
// the body stays one.
func (r *reader) fail(err error) error {
	if r.body.err != nil {
		return fmt.Errorf("reading the body: %w", r.body.err)
	}
	return fmt.Errorf("%w: %v", ErrMalformed, err)
}

// problem reports e; errStop once more than MaxProblems are reported.
func (r *reader) problem(e *field.Error) error {
	r.w.add(e)
	if r.w.full() {
		return errStop
	}
	return nil
}

func (r *reader) token() (jsontext.Token, error) {
	t, err := r.dec.ReadToken()
	if err != nil {
		return t, r.fail(err)
	}
	return t, nil
}

func (r *reader) skip() error {
	if err := r.dec.SkipValue(); err != nil {
		return r.fail(err)
	}
	return nil
}

// root reads the top-level object.
func (r *reader) root() (map[string]any, error) {
	if k := r.dec.PeekKind(); k != '{' {
		if _, err := r.token(); err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: the body must be a JSON object", ErrMalformed)
	}
	obj, err := r.object(messageShape, nil)
	if err != nil {
		return nil, err
	}
	if _, err := r.dec.ReadToken(); !errors.Is(err, io.EOF) {
		if r.body.err != nil {
			return nil, r.fail(err)
		}
		return nil, fmt.Errorf("%w: data after the JSON object", ErrMalformed)
	}
	return obj, nil
}

// value reads the next value, of shape s at p.
func (r *reader) value(s *shape, p *field.Path) (any, error) {
	switch k := r.dec.PeekKind(); {
	case k == '{' && (s.fields != nil || s.stringMap):
		return r.object(s, p)
	case k == '[' && s.items != nil:
		return r.list(s, p)
	case k == '{' || k == '[':
		if err := r.skip(); err != nil {
			return nil, err
		}
		if k == '{' {
			return skipped("an object"), nil
		}
		return skipped("a list"), nil
	case k == '"':
		v, err := r.dec.ReadValue()
		if err != nil {
			return nil, r.fail(err)
		}
		if len(v) > 2*MaxStringLength {
			return tooLong(len(v) - 2), nil
		}
		str, err := jsontext.AppendUnquote(nil, v)
		if err != nil {
			return nil, r.fail(err)
		}
		if len(str) > MaxStringLength {
			return tooLong(len(str)), nil
		}
		return string(str), nil
	}
	t, err := r.token()
	if err != nil {
		return nil, err
	}
	switch t.Kind() {
	case 't', 'f':
		return t.Bool(), nil
	case '0':
		return json.Number(t.String()), nil
	}
	return nil, nil
}

// object reads an object of shape s.
func (r *reader) object(s *shape, p *field.Path) (map[string]any, error) {
	if _, err := r.token(); err != nil { // '{'
		return nil, err
	}
	obj := map[string]any{}
	extraLeft := r.extraMax
	keys := 0
	for r.dec.PeekKind() == '"' {
		t, err := r.token()
		if err != nil {
			return nil, err
		}
		key := t.String()
		kp := p.Child(shortKey(key))
		keys++
		if _, dup := obj[key]; dup {
			if err := r.problem(field.Duplicate(kp, "the field appears more than once")); err != nil {
				return nil, err
			}
		}
		switch {
		case s.stringMap && keys > s.maxItems:
			if keys == s.maxItems+1 {
				err = r.problem(field.TooMany(p, keys, s.maxItems))
			}
			if err == nil {
				err = r.skip()
			}
		case s.stringMap && len(key) > MaxIDLength:
			if err = r.problem(field.TooLong(kp, "", MaxIDLength)); err == nil {
				err = r.skip()
			}
		case s.stringMap:
			obj[key], err = r.value(leaf, kp)
		case s.fields[key] != nil:
			obj[key], err = r.value(s.fields[key], kp)
		case s.open && extraLeft >= 0:
			// A config key labhook does not know: kept, within the budget
			// of this config object (its name counts too).
			extraLeft -= len(key)
			var v any
			var problem *field.Error
			v, problem, err = r.extra(kp, &extraLeft)
			switch {
			case err != nil:
			case problem != nil:
				err = r.problem(problem)
			case extraLeft < 0:
				err = r.problem(&field.Error{Type: field.ErrorTypeTooLong, Field: p.String(), BadValue: "",
					Detail: fmt.Sprintf("the config keys labhook does not know (kept in config.extra) may not be more than %d bytes of JSON", r.extraMax)})
			default:
				obj[key] = v
			}
		case s.open:
			err = r.skip()
		default:
			if err = r.problem(field.Forbidden(kp, fmt.Sprintf("unknown field; the known fields are %s", strings.Join(s.known, ", ")))); err == nil {
				err = r.skip()
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if _, err := r.token(); err != nil { // '}'
		return nil, err
	}
	return obj, nil
}

// list reads a list of shape s: at most s.maxItems items are kept; the
// rest are counted and skipped.
func (r *reader) list(s *shape, p *field.Path) (any, error) {
	if _, err := r.token(); err != nil { // '['
		return nil, err
	}
	out := []any{}
	n := 0
	for ; ; n++ {
		if k := r.dec.PeekKind(); k == ']' || k == jsontext.KindInvalid {
			break
		}
		if n >= s.maxItems {
			if err := r.skip(); err != nil {
				return nil, err
			}
			continue
		}
		v, err := r.value(s.items, p.Index(n))
		if err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	if _, err := r.token(); err != nil { // ']'
		return nil, err
	}
	if n > s.maxItems {
		return tooMany(n), nil
	}
	return out, nil
}

// extra reads a config value labhook does not know as a plain tree, taking
// its size from *left. Past the budget (*left < 0) or MaxDepth, the rest of
// the value is skipped and nothing is kept.
func (r *reader) extra(p *field.Path, left *int) (any, *field.Error, error) {
	base := r.dec.StackDepth()
	start := r.dec.InputOffset()
	budget := *left
	var problem *field.Error
	// Containers being built, innermost last, and the name each awaits.
	type open struct {
		obj  map[string]any
		list []any
		name string
	}
	var stack []*open
	var result any
	for {
		if r.dec.InputOffset()-start > int64(budget) || len(stack) > MaxDepth {
			if len(stack) > MaxDepth && problem == nil {
				problem = field.Invalid(p, "", fmt.Sprintf("must not be nested deeper than %d levels", MaxDepth))
			}
			if len(stack) == 0 {
				// The value has not begun: skip it whole.
				if err := r.skip(); err != nil {
					return nil, nil, err
				}
			}
			for r.dec.StackDepth() > base {
				if k := r.dec.PeekKind(); k == '}' || k == ']' {
					if _, err := r.token(); err != nil {
						return nil, nil, err
					}
				} else if err := r.skip(); err != nil {
					return nil, nil, err
				}
			}
			*left = budget - int(r.dec.InputOffset()-start)
			if problem == nil && *left >= 0 {
				*left = -1
			}
			return nil, problem, nil
		}
		var top *open
		if len(stack) > 0 {
			top = stack[len(stack)-1]
			if top.obj != nil && top.name == "" && r.dec.PeekKind() == '"' {
				t, err := r.token()
				if err != nil {
					return nil, nil, err
				}
				top.name = t.String()
				continue
			}
		}
		var v any
		done := false
		switch k := r.dec.PeekKind(); k {
		case '{', '[':
			if _, err := r.token(); err != nil {
				return nil, nil, err
			}
			o := &open{}
			if k == '{' {
				o.obj = map[string]any{}
			} else {
				o.list = []any{}
			}
			stack = append(stack, o)
			continue
		case '}', ']':
			if _, err := r.token(); err != nil {
				return nil, nil, err
			}
			o := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if o.obj != nil {
				v = o.obj
			} else {
				v = o.list
			}
			done = true
		default:
			var err error
			if v, err = r.value(leaf, p); err != nil {
				return nil, nil, err
			}
			done = true
		}
		if !done {
			continue
		}
		if len(stack) == 0 {
			result = v
			break
		}
		top = stack[len(stack)-1]
		if top.obj != nil {
			top.obj[top.name] = v
			top.name = ""
		} else {
			top.list = append(top.list, v)
		}
	}
	*left = budget - int(r.dec.InputOffset()-start)
	return result, problem, nil
}

// shortKey keeps an unknown key short in a field path.
func shortKey(k string) string {
	if len(k) > 64 {
		return k[:64] + "..."
	}
	return k
}
