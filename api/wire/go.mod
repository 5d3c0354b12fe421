// The wire contract of labhook: the messages it sends and accepts, and
// their signatures. Receivers and senders vendor it, so it depends on the
// standard library, the Standard Webhooks library and go-json-experiment's
// jsontext (the streaming JSON reader that becomes the standard library's
// encoding/json/jsontext; it has no dependency of its own) only. Keep it
// that way: no Kubernetes import.
module github.com/labhook/labhook/api/wire

go 1.26.0

require (
	github.com/go-json-experiment/json v1.27.2
	github.com/standard-webhooks/standard-webhooks/libraries v0.0.1
)
