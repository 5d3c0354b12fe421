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

// IsRefConflict tells whether the API server's answer err to an apply is
// a conflict on spec.webhookConfigRef alone, which the webhookserver judges
// again instead of refusing the message.
func IsRefConflict(err error) bool { return isRefConflict(asFieldConflict("object", err)) }
