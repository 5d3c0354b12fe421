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
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/go-json-experiment/json/jsontext"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// Incoming message vocabulary (seed 000).
const (
	IncomingTypeResource = "RESOURCE"

	ActionCreated = "CREATED"
	ActionUpdated = "UPDATED"
	ActionDeleted = "DELETED"
)

// The enums of seed 000, in its order.
var (
	Actions        = []string{ActionCreated, ActionUpdated, ActionDeleted}
	ResourceTypes  = []string{"VM", "URL"}
	ResourceStatus = []string{"STARTING", "PREPARING", "READY", "STOPPING", "STOPPED", "DELETING", "DELETED", "ERROR"}
	InterfaceTypes = []string{"TERMINAL", "DESKTOP", "WEB_PAGE"}
	AuthTypes      = []string{"keypair", "generated_username_password"}
)

// Limits of one incoming message. The decoder enforces them while it
// reads, so what it keeps in memory is bounded by them, not by the body.
const (
	MaxResources         = 100
	MaxInterfaces        = 500
	MaxNetworkInterfaces = 16
	MaxIDLength          = 253
	MaxAddressLength     = 2048
	MaxRegionLength      = 32
	// MaxCredentialKeys bounds the keys of authentication.data.
	MaxCredentialKeys = 16
	// MaxStringLength bounds any string value (a private key is the
	// longest expected).
	MaxStringLength = 16 << 10
	// MaxDepth bounds the nesting of the values kept in config.extra.
	MaxDepth = 32
	// MaxProblems bounds the problems reported for one message.
	MaxProblems = 100
	// DefaultMaxConfigExtraBytes is the default budget of the config keys
	// labhook does not know, per config object, as sent (JSON bytes).
	DefaultMaxConfigExtraBytes = 4096
)

// RegionPattern is the shape of a cloud region code, as the CRD checks it.
var RegionPattern = regexp.MustCompile(`^[a-z]{2,}(-[a-z]+)+-[0-9]+$`)

// IncomingMessage is a decoded, validated incoming message.
type IncomingMessage struct {
	SourceMessageID string
	Type            string
	Action          string
	// Timestamp is the message's timestamp as sent; Time is it parsed.
	Timestamp  string
	Time       time.Time
	Resources  []IncomingResource
	Interfaces []IncomingInterface
}

// IncomingResource is one entry of data.resources. For DELETED only ID is
// required.
type IncomingResource struct {
	ID     string
	Type   string
	Status string
	Name   string
	// Config is nil when the entry has no config object.
	Config *IncomingResourceConfig
}

// IncomingResourceConfig is a resource's config. The seed's
// network_interface (one object) and a network_interfaces list both land in
// NetworkInterfaces.
type IncomingResourceConfig struct {
	NetworkInterfaces []NetworkInterface
	Address           string
	// Extra holds the config keys labhook does not know, as sent.
	Extra map[string]any
}

// NetworkInterface is one network interface of a VM.
type NetworkInterface struct {
	PublicIP  string
	PrivateIP string
	DNS       string
}

// IncomingInterface is one entry of data.interfaces. For DELETED only
// ResourceID and Name are required.
type IncomingInterface struct {
	Name       string
	Type       string
	Region     string
	ResourceID string
	// Config is nil when the entry has no config object.
	Config *IncomingInterfaceConfig
}

// IncomingInterfaceConfig is an interface's config. A port sent as a string
// ("3389") is normalised to a number.
type IncomingInterfaceConfig struct {
	Port           *int32
	Authentication *Authentication
	Extra          map[string]any
}

// Authentication is how an interface logs in. Data is a credential: it
// belongs in a Secret and never prints.
type Authentication struct {
	Type string
	Data Credentials
}

// Credentials are authentication data. They format as "[redacted]" so that
// a log line or an error can never carry them.
type Credentials map[string]string

// String redacts.
func (Credentials) String() string { return "[redacted]" }

// GoString redacts.
func (Credentials) GoString() string { return "[redacted]" }

// MarshalJSON redacts: credentials leave only through a Secret.
func (Credentials) MarshalJSON() ([]byte, error) { return []byte(`"[redacted]"`), nil }

// ParseOptions tune validation.
type ParseOptions struct {
	// Regions, when not empty, is the exhaustive list of accepted regions.
	Regions []string
	// MaxConfigExtraBytes bounds the config keys labhook does not know (they
	// go to config.extra), per config object, in JSON bytes as sent; 0 means
	// DefaultMaxConfigExtraBytes.
	MaxConfigExtraBytes int
}

// ErrMalformed wraps a body that is not one JSON object.
var ErrMalformed = errors.New("malformed JSON")

// ParseIncoming decodes and validates body as a whole. It reports every
// problem it finds (up to MaxProblems), each with its field path
// (data.resources[1].type), not just the first. Unknown fields are errors,
// except inside a config object, where unknown keys are kept in Extra. It
// returns a message only when there is no problem. A body that is not a
// JSON object gives a single error wrapping ErrMalformed.
func ParseIncoming(body []byte, opts ParseOptions) (*IncomingMessage, field.ErrorList, error) {
	return DecodeIncoming(bytes.NewReader(body), opts)
}

// DecodeIncoming is ParseIncoming reading from r, token by token: lists,
// strings, nesting and config.extra are bounded while the body streams in,
// so memory does not grow with what a sender puts in the body. An error
// reading r that is not about the JSON itself (a body over its size limit,
// a client gone) is returned wrapped, without ErrMalformed.
func DecodeIncoming(r io.Reader, opts ParseOptions) (*IncomingMessage, field.ErrorList, error) {
	body := &bodyReader{r: r}
	w := &walker{opts: opts}
	extraMax := opts.MaxConfigExtraBytes
	if extraMax <= 0 {
		extraMax = DefaultMaxConfigExtraBytes
	}
	// Duplicate names are found by the reader among the keys it keeps, so
	// the decoder need not remember every name of a large object.
	dec := jsontext.NewDecoder(body, jsontext.AllowDuplicateNames(true))
	rd := &reader{dec: dec, body: body, w: w, extraMax: extraMax}
	obj, err := rd.root()
	if errors.Is(err, errStop) {
		return nil, w.errs, nil
	}
	if err != nil {
		return nil, nil, err
	}
	m := w.message(obj)
	if len(w.errs) > 0 {
		return nil, w.errs, nil
	}
	return m, nil, nil
}

// walker turns a decoded, bounded JSON tree into an IncomingMessage,
// collecting every problem on the way.
type walker struct {
	opts ParseOptions
	errs field.ErrorList
}

// add reports a problem; past MaxProblems, one last entry says so and the
// rest are dropped.
func (w *walker) add(err *field.Error) {
	switch {
	case len(w.errs) < MaxProblems:
		w.errs = append(w.errs, err)
	case len(w.errs) == MaxProblems:
		w.errs = append(w.errs, field.Forbidden(field.NewPath("data"), fmt.Sprintf("more than %d problems; the first %d are listed", MaxProblems, MaxProblems)))
	}
}

func (w *walker) full() bool { return len(w.errs) > MaxProblems }

func sortedKeys(obj map[string]any) []string {
	keys := make([]string, 0, len(obj))
	for k := range obj {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func typeName(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		return "a string"
	case json.Number:
		return "a number"
	case bool:
		return "a boolean"
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	case tooLong:
		return "a string"
	case tooMany:
		return "a list"
	case skipped:
		return string(v)
	}
	return fmt.Sprintf("%T", v)
}

func (w *walker) wrongType(p *field.Path, v any, want string) {
	w.add(field.Invalid(p, truncate(v), fmt.Sprintf("must be %s, not %s", want, typeName(v))))
}

// truncate keeps a rejected value short in an error.
func truncate(v any) any {
	switch v := v.(type) {
	case string:
		if len(v) > 64 {
			return v[:64] + "..."
		}
		return v
	case json.Number:
		return string(v)
	case nil, bool:
		return v
	case tooLong:
		return fmt.Sprintf("<a string of %d bytes>", int(v))
	}
	return "<" + typeName(v) + ">"
}

// str reads a string field. A missing required one is reported.
func (w *walker) str(obj map[string]any, key string, p *field.Path, required bool, maxLen int) string {
	v, ok := obj[key]
	if !ok || v == nil {
		if required {
			w.add(field.Required(p.Child(key), ""))
		}
		return ""
	}
	if n, ok := v.(tooLong); ok {
		limit := maxLen
		if limit <= 0 {
			limit = MaxStringLength
		}
		w.add(field.TooLong(p.Child(key), truncate(n), limit))
		return ""
	}
	s, ok := v.(string)
	if !ok {
		w.wrongType(p.Child(key), v, "a string")
		return ""
	}
	if s == "" && required {
		w.add(field.Required(p.Child(key), "must not be empty"))
	}
	if maxLen > 0 && len(s) > maxLen {
		w.add(field.TooLong(p.Child(key), "", maxLen))
	}
	if strings.ContainsFunc(s, unicode.IsControl) {
		w.add(field.Invalid(p.Child(key), truncate(s), "must not contain control characters"))
	}
	return s
}

// enum reads a string field that takes one of values.
func (w *walker) enum(obj map[string]any, key string, p *field.Path, required bool, values []string) string {
	s := w.str(obj, key, p, required, 0)
	if s != "" && !slices.Contains(values, s) {
		w.add(field.NotSupported(p.Child(key), s, values))
		return ""
	}
	return s
}

// object reads an optional object field.
func (w *walker) object(obj map[string]any, key string, p *field.Path) (map[string]any, bool) {
	v, ok := obj[key]
	if !ok || v == nil {
		return nil, false
	}
	o, ok := v.(map[string]any)
	if !ok {
		w.wrongType(p.Child(key), v, "an object")
		return nil, false
	}
	return o, true
}

// list reads an optional list field of at most maxItems.
func (w *walker) list(obj map[string]any, key string, p *field.Path, maxItems int) []any {
	v, ok := obj[key]
	if !ok || v == nil {
		return nil
	}
	if n, ok := v.(tooMany); ok {
		w.add(field.TooMany(p.Child(key), int(n), maxItems))
		return nil
	}
	l, ok := v.([]any)
	if !ok {
		w.wrongType(p.Child(key), v, "a list")
		return nil
	}
	if len(l) > maxItems {
		w.add(field.TooMany(p.Child(key), len(l), maxItems))
		return nil
	}
	return l
}

func (w *walker) message(obj map[string]any) *IncomingMessage {
	m := &IncomingMessage{
		SourceMessageID: w.str(obj, "source_message_id", nil, true, MaxIDLength),
		Type:            w.enum(obj, "type", nil, true, []string{IncomingTypeResource}),
		Action:          w.enum(obj, "action", nil, true, Actions),
		Timestamp:       w.str(obj, "timestamp", nil, true, 64),
	}
	if m.Timestamp != "" {
		t, err := time.Parse(time.RFC3339Nano, m.Timestamp)
		if err != nil {
			w.add(field.Invalid(field.NewPath("timestamp"), m.Timestamp, "must be an ISO 8601 timestamp with a time zone, such as 2020-10-05T08:39:09+00:00"))
		}
		m.Time = t
	}
	dp := field.NewPath("data")
	data, ok := w.object(obj, "data", nil)
	if !ok {
		if _, present := obj["data"]; !present || obj["data"] == nil {
			w.add(field.Required(dp, "an object with resources and interfaces"))
		}
		return m
	}
	deleted := m.Action == ActionDeleted
	resources := w.list(data, "resources", dp, MaxResources)
	interfaces := w.list(data, "interfaces", dp, MaxInterfaces)
	_, manyResources := data["resources"].(tooMany)
	_, manyInterfaces := data["interfaces"].(tooMany)
	if len(resources) == 0 && len(interfaces) == 0 && !manyResources && !manyInterfaces {
		w.add(field.Required(dp, "at least one resource or interface"))
	}
	ids := map[string]bool{}
	for i, v := range resources {
		p := dp.Child("resources").Index(i)
		o, ok := v.(map[string]any)
		if !ok {
			w.wrongType(p, v, "an object")
			continue
		}
		r := w.resource(o, p, deleted)
		if r.ID != "" {
			if ids[r.ID] {
				w.add(field.Duplicate(p.Child("id"), r.ID))
			}
			ids[r.ID] = true
		}
		m.Resources = append(m.Resources, r)
	}
	type ifKey struct{ resource, name string }
	seen := map[ifKey]bool{}
	for i, v := range interfaces {
		p := dp.Child("interfaces").Index(i)
		o, ok := v.(map[string]any)
		if !ok {
			w.wrongType(p, v, "an object")
			continue
		}
		f := w.iface(o, p, deleted)
		k := ifKey{f.ResourceID, f.Name}
		if f.Name != "" && f.ResourceID != "" {
			if seen[k] {
				w.add(field.Duplicate(p.Child("name"), f.Name))
			}
			seen[k] = true
		}
		m.Interfaces = append(m.Interfaces, f)
	}
	return m
}

func (w *walker) resource(o map[string]any, p *field.Path, deleted bool) IncomingResource {
	r := IncomingResource{
		ID:     w.str(o, "id", p, true, MaxIDLength),
		Type:   w.enum(o, "type", p, !deleted, ResourceTypes),
		Status: w.enum(o, "status", p, !deleted, ResourceStatus),
		Name:   w.str(o, "name", p, false, MaxIDLength),
	}
	cp := p.Child("config")
	cfg, ok := w.object(o, "config", p)
	if !ok {
		if r.Type == "URL" && !deleted {
			w.add(field.Required(cp.Child("address"), "a URL resource needs its address"))
		}
		return r
	}
	r.Config = &IncomingResourceConfig{}
	for _, k := range sortedKeys(cfg) {
		v := cfg[k]
		switch k {
		case "network_interface":
			if one, ok := v.(map[string]any); ok {
				r.Config.NetworkInterfaces = append(r.Config.NetworkInterfaces, w.nic(one, cp.Child(k)))
				continue
			}
			fallthrough
		case "network_interfaces":
			l := w.list(cfg, k, cp, MaxNetworkInterfaces)
			for i, n := range l {
				if one, ok := n.(map[string]any); ok {
					r.Config.NetworkInterfaces = append(r.Config.NetworkInterfaces, w.nic(one, cp.Child(k).Index(i)))
				} else {
					w.wrongType(cp.Child(k).Index(i), n, "an object")
				}
			}
		case "address":
			r.Config.Address = w.str(cfg, k, cp, false, MaxAddressLength)
			if a := r.Config.Address; a != "" {
				if u, err := url.Parse(a); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
					w.add(field.Invalid(cp.Child(k), a, "must be an absolute http:// or https:// URL"))
				}
			}
		default:
			if r.Config.Extra == nil {
				r.Config.Extra = map[string]any{}
			}
			r.Config.Extra[k] = v
		}
	}
	if _, one := cfg["network_interface"]; one {
		if _, many := cfg["network_interfaces"]; many {
			w.add(field.Forbidden(cp.Child("network_interfaces"), "send network_interface or network_interfaces, not both"))
		}
	}
	if len(r.Config.NetworkInterfaces) > MaxNetworkInterfaces {
		w.add(field.TooMany(cp.Child("network_interfaces"), len(r.Config.NetworkInterfaces), MaxNetworkInterfaces))
	}
	switch r.Type {
	case "VM":
		if r.Config.Address != "" {
			w.add(field.Forbidden(cp.Child("address"), "only a URL resource has an address"))
		}
	case "URL":
		if len(r.Config.NetworkInterfaces) > 0 {
			w.add(field.Forbidden(cp.Child("network_interface"), "only a VM resource has network interfaces"))
		}
		if r.Config.Address == "" && !deleted {
			if _, sent := cfg["address"]; !sent {
				w.add(field.Required(cp.Child("address"), "a URL resource needs its address"))
			}
		}
	}
	return r
}

func (w *walker) nic(o map[string]any, p *field.Path) NetworkInterface {
	n := NetworkInterface{
		PublicIP:  w.str(o, "public_ip", p, false, 45),
		PrivateIP: w.str(o, "private_ip", p, false, 45),
		DNS:       w.str(o, "dns", p, false, 253),
	}
	for k, ip := range map[string]string{"public_ip": n.PublicIP, "private_ip": n.PrivateIP} {
		if ip == "" {
			continue
		}
		if _, err := netip.ParseAddr(ip); err != nil {
			w.add(field.Invalid(p.Child(k), ip, "must be an IPv4 or IPv6 address"))
		}
	}
	if n.DNS != "" {
		if msgs := validation.IsDNS1123Subdomain(strings.ToLower(n.DNS)); len(msgs) > 0 {
			w.add(field.Invalid(p.Child("dns"), n.DNS, "must be a host name such as labs.example.com"))
		}
	}
	return n
}

func (w *walker) iface(o map[string]any, p *field.Path, deleted bool) IncomingInterface {
	f := IncomingInterface{
		Name:       w.str(o, "name", p, true, MaxIDLength),
		Type:       w.enum(o, "type", p, !deleted, InterfaceTypes),
		Region:     w.str(o, "region", p, !deleted, MaxRegionLength),
		ResourceID: w.str(o, "resource_id", p, true, MaxIDLength),
	}
	if f.Region != "" {
		switch {
		case !RegionPattern.MatchString(f.Region):
			w.add(field.Invalid(p.Child("region"), f.Region, "must be a cloud region code such as us-east-1 or eu-north-1"))
		case len(w.opts.Regions) > 0 && !slices.Contains(w.opts.Regions, f.Region):
			w.add(field.NotSupported(p.Child("region"), f.Region, w.opts.Regions))
		}
	}
	cp := p.Child("config")
	cfg, ok := w.object(o, "config", p)
	if !ok {
		return f
	}
	f.Config = &IncomingInterfaceConfig{}
	for _, k := range sortedKeys(cfg) {
		v := cfg[k]
		switch k {
		case "port":
			f.Config.Port = w.port(v, cp.Child(k))
		case "authentication":
			a, ok := v.(map[string]any)
			if !ok {
				w.wrongType(cp.Child(k), v, "an object")
				continue
			}
			f.Config.Authentication = w.auth(a, cp.Child(k))
		default:
			if f.Config.Extra == nil {
				f.Config.Extra = map[string]any{}
			}
			f.Config.Extra[k] = v
		}
	}
	if f.Type == "WEB_PAGE" && f.Config.Authentication != nil {
		w.add(field.Forbidden(cp.Child("authentication"), "only TERMINAL and DESKTOP interfaces authenticate"))
	}
	return f
}

// port accepts 8080 and "8080".
func (w *walker) port(v any, p *field.Path) *int32 {
	var s string
	switch v := v.(type) {
	case nil:
		return nil
	case json.Number:
		s = string(v)
	case string:
		s = v
	default:
		w.wrongType(p, v, "a number or a string of digits")
		return nil
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		w.add(field.Invalid(p, truncate(v), "must be a whole number between 1 and 65535"))
		return nil
	}
	if n < 1 || n > 65535 {
		w.add(field.Invalid(p, n, validation.InclusiveRangeError(1, 65535)))
		return nil
	}
	port := int32(n)
	return &port
}

// auth reads an authentication object. Credential values never appear in
// an error: only their field paths do.
func (w *walker) auth(o map[string]any, p *field.Path) *Authentication {
	a := &Authentication{Type: w.enum(o, "type", p, true, AuthTypes), Data: Credentials{}}
	data, ok := w.object(o, "data", p)
	if !ok {
		if _, sent := o["data"]; !sent {
			w.add(field.Required(p.Child("data"), "the credentials"))
		}
		return a
	}
	dp := p.Child("data")
	for _, k := range sortedKeys(data) {
		v := data[k]
		if n, ok := v.(tooLong); ok {
			w.add(field.TooLong(dp.Child(k), truncate(n), MaxStringLength))
			continue
		}
		s, ok := v.(string)
		if !ok {
			w.add(field.Invalid(dp.Child(k), "<"+typeName(v)+">", "must be a string"))
			continue
		}
		if msgs := validation.IsConfigMapKey(k); len(msgs) > 0 {
			w.add(field.Invalid(dp.Child(k), "", "must be a Secret key: "+strings.Join(msgs, "; ")))
			continue
		}
		a.Data[k] = s
	}
	var required []string
	switch a.Type {
	case "keypair":
		required = []string{"key"}
	case "generated_username_password":
		required = []string{"username", "password"}
	}
	for _, k := range required {
		if a.Data[k] == "" {
			w.add(field.Required(dp.Child(k), fmt.Sprintf("authentication type %s needs %s", a.Type, strings.Join(required, " and "))))
		}
	}
	return a
}
