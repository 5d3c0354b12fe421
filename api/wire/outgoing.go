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

// Package wire is labhook's wire contract, importable by customers on its
// own: the incoming and outgoing message formats of the seeds, the outgoing
// type/status catalogue, the timestamp format, incoming validation, and
// signing and verification on top of the Standard Webhooks library. It is
// a Go module of its own (see README.md) and imports nothing of Kubernetes.
package wire

import (
	"encoding/json"
	"time"
)

// TimestampFormat is the outgoing timestamp layout: ISO 8601 in UTC with a
// numeric offset, as in seed 001 ("2020-10-05T08:36:09+00:00").
const TimestampFormat = "2006-01-02T15:04:05-07:00"

// FormatTimestamp renders t in TimestampFormat, in UTC.
func FormatTimestamp(t time.Time) string {
	return t.UTC().Format(TimestampFormat)
}

// OutgoingMessage is the body POSTed to a customer backend (seed 001). The
// field order is the key order on the wire.
type OutgoingMessage struct {
	MessageID string          `json:"message_id"`
	Type      string          `json:"type"`
	Status    string          `json:"status"`
	EntityIDs []string        `json:"entity_ids"`
	Timestamp string          `json:"timestamp"`
	Context   json.RawMessage `json:"context"`
	Callback  string          `json:"callback"`
}

// Marshal renders the message deterministically: keys in seed order, no
// HTML escaping, context compacted, and {} for an empty context. The same
// message always gives the same bytes, so every retry is identical.
func (m OutgoingMessage) Marshal() ([]byte, error) {
	if len(m.Context) == 0 {
		m.Context = json.RawMessage(`{}`)
	}
	if m.EntityIDs == nil {
		m.EntityIDs = []string{}
	}
	return json.Marshal(m)
}

// Outgoing message types: seed 001, plus INTERFACE and WEBHOOK_CONFIG (extensions).
const (
	TypeClass              = "CLASS"
	TypeEvent              = "EVENT"
	TypeEventWorkspace     = "EVENT_WORKSPACE"
	TypeOndemandCourse     = "ONDEMAND_COURSE"
	TypeOndemandEnrollment = "ONDEMAND_ENROLLMENT"
	TypeResource           = "RESOURCE"
	TypeInterface          = "INTERFACE"
	TypeWebhookConfig      = "WEBHOOK_CONFIG"
)

// Statuses used by labhook's own producers.
const (
	StatusCreated   = "CREATED"
	StatusUpdated   = "UPDATED"
	StatusDeleted   = "DELETED"
	StatusRestarted = "RESTARTED"
	StatusReplaced  = "REPLACED"
	StatusTest      = "TEST"
)

// CatalogueEntry is one outgoing type and the statuses it takes.
type CatalogueEntry struct {
	Type     string
	Statuses []string
}

// Catalogue is the exhaustive outgoing type/status list of seed 001, in the
// seed's order, with labhook's extensions: RESOURCE CREATED/UPDATED/DELETED,
// INTERFACE and WEBHOOK_CONFIG TEST. The CRD's CEL rule on
// OutgoingMessage.spec encodes the same table; a test proves they agree.
var Catalogue = []CatalogueEntry{
	{TypeClass, []string{"CREATED", "UPDATED", "DELETED"}},
	{TypeEvent, []string{"STARTED", "ENDED", "EXTENDED"}},
	{TypeEventWorkspace, []string{"CREATED", "REMOVED", "REINSTATED", "DELETED"}},
	{TypeOndemandCourse, []string{"CREATED", "UPDATED", "DELETED", "STATUS_CHANGE"}},
	{TypeOndemandEnrollment, []string{"CREATED", "STARTED", "FINISHED", "EXPIRED", "STOPPED", "RESUMED"}},
	{TypeResource, []string{"RESTARTED", "REPLACED", "CREATED", "UPDATED", "DELETED"}},
	{TypeInterface, []string{"CREATED", "UPDATED", "DELETED"}},
	{TypeWebhookConfig, []string{"TEST"}},
}

// ValidStatus reports whether status is catalogued for typ.
func ValidStatus(typ, status string) bool {
	for _, e := range Catalogue {
		if e.Type != typ {
			continue
		}
		for _, s := range e.Statuses {
			if s == status {
				return true
			}
		}
	}
	return false
}
